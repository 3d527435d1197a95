"""Dependency audit: pip-audit over the installed environment, with PyPI's own advisories as the fallback.

    python -m tools.audit            # table of findings; exit 1 on a vulnerability deploy/dependency-audit.toml
                                     # does not explain

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

from packaging.utils import canonicalize_name

KNOWN = Path(__file__).resolve().parents[1] / "deploy" / "dependency-audit.toml"
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
    versions = installed()
    result = Audit()
    skipped = []
    for dependency in run_pip_audit(python):
        name = canonicalize_name(dependency["name"])
        if "skip_reason" in dependency:
            skipped.append(name)
            continue
        result.audited[name] = "pip-audit"
        for vuln in dependency.get("vulns", []):
            result.findings.append(
                Finding(name, dependency["version"], vuln["id"], tuple(vuln.get("fix_versions", [])), "pip-audit")
            )
    with ThreadPoolExecutor(16) as pool:
        pages = dict(zip(skipped, pool.map(pypi_latest, skipped), strict=True))
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


def report(result: Audit, accepted: dict[str, str]) -> list[str]:
    lines = [f"audited {len(result.audited)} distributions, could not audit {len(result.not_audited)}"]
    lines += [f"  not audited: {name}: {why}" for name, why in sorted(result.not_audited.items())]
    for finding in result.findings:
        note = accepted.get(finding.id, "NOT EXPLAINED in deploy/dependency-audit.toml")
        fixed = ", ".join(finding.fixed_in) or "-"
        lines.append(f"  {finding.name} {finding.version}: {finding.id} (fixed in {fixed}): {note}")
    return lines


def main() -> int:
    accepted = known().get("accepted", {})
    result = audit()
    sys.stdout.write("\n".join(report(result, accepted)) + "\n")
    return 1 if result.unexplained(accepted) else 0


if __name__ == "__main__":
    raise SystemExit(main())
