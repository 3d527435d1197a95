"""The shipped Prometheus config and alert rules, checked and unit-tested by promtool itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.system_packages import ensure_debian_binary

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    return ensure_debian_binary("promtool", "prometheus")


@pytest.mark.parametrize(
    "args",
    [["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]],
    ids=["config", "rules", "rule-unit-tests"],
)
def test_promtool_accepts(promtool, args):
    result = subprocess.run([promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_unit_test():
    import yaml

    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")}
    quiet = {case["alertname"] for test in tests for case in test["alert_rule_test"] if not case.get("exp_alerts")}
    assert alerts == fired, f"alerts without a firing test: {alerts - fired}"
    assert alerts == quiet, f"alerts without a healthy-series test: {alerts - quiet}"


def test_unit_tests_use_the_names_the_service_deploys():
    """The synthetic series carry the applications and deployments Serve really labels our metrics with."""
    import re

    import yaml

    from service.app import application_names
    from service.ingress import Front
    from service.tasks import TASKS

    names = application_names()
    deployments = {names["front"]: Front.name, **{names[task]: TASKS[task].deployment for task in TASKS}}
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    labelled = 0
    for test in tests:
        for series in test["input_series"]:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', series["series"]))
            if "application" not in labels:
                continue
            labelled += 1
            assert labels["application"] in deployments, series["series"]
            if "deployment" in labels:
                assert labels["deployment"] == deployments[labels["application"]], series["series"]
            if labels.get("task") in TASKS:  # each task's requests are counted in its own application
                assert labels["application"] == names[labels["task"]], series["series"]
    assert labelled
