"""Dependency audit: pip-audit over the installed environment, with PyPI's own advisories as the fallback.

    python -m tools.audit            # every advisory found; exit 1 only on one against a release pyproject.toml
                                     # pins exactly (==) that deploy/dependency-audit.toml does not accept

Every advisory is reported. Only those against an exact pin fail: a pinned release stays put until someone moves
the pin, so its advisory is this project's to fix or explain. Everything else is resolved to the newest release
its ranges allow, and an advisory published today against some transitive dependency is reported for the next
upgrade, not turned into a red build that no change here caused.

pip-audit asks PyPI's per-release JSON (or OSV) for each installed distribution. Where that is not reachable
(this project's build machines see a PyPI mirror without per-release pages, and no OSV), a distribution
pip-audit skipped is checked against PyPI's project page instead, whose `vulnerabilities` list covers the
latest release: exact when the installed version is the latest, so only those count as audited. The rest are
listed as not audited, never passed off as clean.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import Specifier
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
KNOWN = REPO / "deploy" / "dependency-audit.toml"
PYPROJECT = REPO / "pyproject.toml"
PROJECT = "attention-serve"


@dataclass(frozen=True)
class Finding:
    name: str
    version: str
    id: str
    fixed_in: tuple[str, ...]
    source: str


@dataclass
class Audit:
    audited: dict[str, str] = field(default_factory=dict)  # name -> which source checked it
    not_audited: dict[str, str] = field(default_factory=dict)  # name -> why not
    findings: list[Finding] = field(default_factory=list)

    def unexplained(self, accepted: dict[str, str]) -> list[Finding]:
        return [f for f in self.findings if f.id not in accepted]

    def failing(self, accepted: dict[str, str], pins: dict[str, str]) -> list[Finding]:
        """The unexplained advisories against exactly the release pyproject.toml pins: the ones that fail.

        The release is matched as pip does (PEP 440), so `torch==2.13.0` pins the installed 2.13.0+cpu."""
        return [f for f in self.unexplained(accepted) if is_pinned(f.name, f.version, pins)]


def is_pinned(name: str, version: str, pins: dict[str, str]) -> bool:
    pin = pins.get(canonicalize_name(name))
    return pin is not None and Specifier(f"=={pin}").contains(version, prereleases=True)


def exact_pins(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """name -> version for every `name==version` in pyproject.toml's dependencies and extras (`ray[serve]==2.60.0`
    pins ray); ranges, upper bounds and wildcards (`==2.*`) are not exact pins."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    pins = {}
    for line in lines:
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator == "==" and "*" not in spec.version:
                pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def run_pip_audit(python: str = sys.executable) -> list[dict]:
    command = [python, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if not done.stdout.strip():
        raise RuntimeError(f"pip-audit gave no report: {done.stderr[-2000:]}")
    return json.loads(done.stdout)["dependencies"]


def pypi_latest(name: str) -> tuple[str, list[dict]] | None:
    """The latest release of `name` on PyPI and the advisories against it; None when PyPI cannot be asked."""
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as reply:
            page = json.load(reply)
    except (OSError, ValueError):
        return None
    return page["info"]["version"], page.get("vulnerabilities") or []


def audit(python: str = sys.executable) -> Audit:
    dependencies = run_pip_audit(python)
    skipped = [canonicalize_name(d["name"]) for d in dependencies if "skip_reason" in d]
    with ThreadPoolExecutor(16) as pool:
        pages = dict(zip(skipped, pool.map(pypi_latest, skipped), strict=True))
    return collect(dependencies, pages, installed())


def collect(
    dependencies: list[dict], pages: dict[str, tuple[str, list[dict]] | None], versions: dict[str, str]
) -> Audit:
    """The audit from pip-audit's `dependencies` (its JSON report) and, for what it skipped, PyPI's project pages
    (`pypi_latest`'s answers by name); `versions` is what is installed, by canonical name."""
    result = Audit()
    for dependency in dependencies:
        name = canonicalize_name(dependency["name"])
        if "skip_reason" in dependency:
            continue
        result.audited[name] = "pip-audit"
        for vuln in dependency.get("vulns", []):
            result.findings.append(
                Finding(name, dependency["version"], vuln["id"], tuple(vuln.get("fix_versions", [])), "pip-audit")
            )
    for name, page in pages.items():
        version = versions.get(name, "?")
        if name == PROJECT:
            continue  # this project itself: not on PyPI
        if page is None:
            result.not_audited[name] = "PyPI unreachable"
        elif page[0] != version:
            result.not_audited[name] = f"{version} installed, PyPI only lists advisories for the latest ({page[0]})"
        else:
            result.audited[name] = "PyPI project page"
            for vuln in page[1]:
                fixed = tuple(vuln.get("fixed_in") or ())
                result.findings.append(Finding(name, version, vuln["id"], fixed, "PyPI project page"))
    return result


def known() -> dict[str, dict[str, str]]:
    return tomllib.loads(KNOWN.read_text())


def report(result: Audit, accepted: dict[str, str], pins: dict[str, str]) -> list[str]:
    """Every finding, each saying whether it fails the audit (an exact pin, not accepted) or is only reported."""
    failing = set(result.failing(accepted, pins))
    lines = [
        f"audited {len(result.audited)} distributions, could not audit {len(result.not_audited)}; "
        f"{len(result.findings)} advisories, {len(failing)} failing (against an exact pin, not accepted)"
    ]
    lines += [f"  not audited: {name}: {why}" for name, why in sorted(result.not_audited.items())]
    for finding in result.findings:
        fixed = ", ".join(finding.fixed_in) or "-"
        if finding.id in accepted:
            verdict = f"accepted: {accepted[finding.id]}"
        elif finding in failing:
            verdict = f"FAILS: pyproject.toml pins {finding.name}=={finding.version}; move the pin or accept it in"
            verdict += " deploy/dependency-audit.toml"
        else:
            verdict = "reported: not an exact pin, upgrade when a fix is out (or pin and explain)"
        lines.append(f"  {finding.name} {finding.version}: {finding.id} (fixed in {fixed}): {verdict}")
    return lines


def main() -> int:
    accepted = known().get("accepted", {})
    pins = exact_pins()
    result = audit()
    sys.stdout.write("\n".join(report(result, accepted, pins)) + "\n")
    return 1 if result.failing(accepted, pins) else 0


if __name__ == "__main__":
    raise SystemExit(main())
