"""The dependency audit (tools/audit.py) and the reasons for every pin (deploy/dependency-audit.toml)."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement

from tests.deploy.dockerfiles import REPO
from tools.audit import audit, installed, known, report


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


def test_no_installed_release_has_an_unexplained_advisory():
    accepted = known().get("accepted", {})
    result = audit()
    lines = "\n".join(report(result, accepted))
    assert result.unexplained(accepted) == [], lines
    # An audit that could check nothing must not pass for a clean one.
    assert len(result.audited) >= len(installed()) // 2, lines
