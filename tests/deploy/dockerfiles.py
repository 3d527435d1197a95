"""Reading a Dockerfile and a .dockerignore the way Docker does, enough for the checks in tests/deploy.

No Docker engine runs on the test machine, so the build context and the stages are worked out here: instructions
(continuation lines joined, comments dropped), stages by name, COPY sources, and .dockerignore's matching (Go's
filepath.Match per path segment, `**` for any number of segments, later patterns win, `!` re-includes, a pattern
that matches a directory matches everything under it).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for instruction, args in self.instructions if instruction == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; comments, parser directives and blank lines dropped."""
    result = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(text: str) -> dict[str, Stage]:
    """Stages by name (unnamed ones by index); a stage built FROM another stage inherits its instructions."""
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in instructions(text):
        if keyword == "FROM":
            words = args.split()
            base = words[0]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(found))
            inherited = list(found[base].instructions) if base in found else []
            current = Stage(name, base, inherited)
            found[name] = current
        elif current is not None:
            current.instructions.append((keyword, args))
    return found


def env(stage: Stage) -> dict[str, str]:
    """The environment a stage's ENV instructions set (`ENV a=b c=d` and the old `ENV a b` form), later ones winning."""
    found: dict[str, str] = {}
    for args in stage.all("ENV"):
        words = shlex.split(args)
        if words and "=" not in words[0]:
            found[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            name, _, value = word.partition("=")
            found[name] = value
    return found


def final_stage(text: str) -> Stage:
    return list(stages(text).values())[-1]


def copy_sources(args: str) -> list[str]:
    """Build-context paths of one COPY/ADD (none when it copies --from another stage or image)."""
    words = shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    if any(flag.startswith("--from=") for flag in flags):
        return []
    return paths[:-1]


def _segment_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1].replace("[!", "[^"))
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


class DockerIgnore:
    def __init__(self, text: str) -> None:
        self.patterns: list[tuple[bool, str, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            self.patterns.append((negated, pattern, re.compile(_segment_regex(pattern) + r"\Z")))

    def excludes(self, path: str) -> bool:
        """Whether `path` (relative, with /) is left out of the build context."""
        parts = path.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for negated, _, regex in self.patterns:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not negated
        return excluded

    def context_files(self, root: Path) -> list[str]:
        """Every file of the build context that `root` would send."""
        reincluded = [pattern for negated, pattern, _ in self.patterns if negated]
        files = []
        for directory, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(directory, root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            # Skip excluded trees (.venv, .git) unless a `!` pattern reaches inside them.
            dirnames[:] = [
                d
                for d in dirnames
                if not self.excludes(rel_dir + d) or any(p.startswith(rel_dir + d + "/") for p in reincluded)
            ]
            files += [rel_dir + name for name in filenames if not self.excludes(rel_dir + name)]
        return files


def repo_dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def repo_dockerignore() -> DockerIgnore:
    return DockerIgnore((REPO / ".dockerignore").read_text())
