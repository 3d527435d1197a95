"""deploy/serve_config.yaml is what users `serve deploy`: it must be valid for Ray and for our settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from service.app import application_names, serve_applications
from service.settings import BatchSettings, DeploymentSettings, Settings
from service.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "deploy" / "serve_config.yaml").read_text())


def test_ray_accepts_the_config():
    schema = ServeDeploySchema.model_validate(CONFIG)
    assert [app.import_path for app in schema.applications] == [
        "service.app:front_app",
        "service.app:sentiment_app",
        "service.app:qa_app",
    ]


def test_it_deploys_what_attention_serve_run_deploys():
    """Same applications, names and routes as the built-in default, and the same args for all three."""
    ours = [(a["name"], a["route_prefix"], a["import_path"]) for a in CONFIG["applications"]]
    default = [(a["name"], a["route_prefix"], a["import_path"]) for a in serve_applications()]
    assert ours == default
    assert all(app["args"] == CONFIG["applications"][0]["args"] for app in CONFIG["applications"])


def test_args_are_valid_settings_and_deployments_exist():
    settings = Settings(**CONFIG["applications"][0].get("args", {}))
    by_app = {app["name"]: app for app in CONFIG["applications"]}
    for task, deployment_name in ((t, spec.deployment) for t, spec in TASKS.items()):
        (deployment,) = by_app[application_names(settings.path_prefix)[task]]["deployments"]
        assert deployment["name"] == deployment_name
        batching = BatchSettings.model_validate(deployment["user_config"])
        # Serve never hands a replica more than max_ongoing_requests at once: batches could not fill.
        assert deployment["max_ongoing_requests"] >= batching.max_batch_size, deployment["name"]


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    first_cells = re.findall(r"^\| ([^|]+)\|", readme, flags=re.M)
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    fields = (set(Settings.model_fields) | set(BatchSettings.model_fields) | set(DeploymentSettings.model_fields)) - {
        "sentiment",
        "qa",
        "batching",
    }
    assert fields <= documented, f"settings missing from the README table: {sorted(fields - documented)}"


def test_api_key_can_come_from_a_file(tmp_path, monkeypatch):
    key_file = tmp_path / "api_key"
    key_file.write_text("s3cret-key\n")
    monkeypatch.setenv("ATTENTION_SERVE_API_KEY_FILE", str(key_file))
    settings = Settings()
    assert settings.api_key.get_secret_value() == "s3cret-key"
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.model_dump_json()


def test_an_empty_or_doubled_api_key_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValidationError, match="is empty"):
        Settings(api_key_file=empty)
    with pytest.raises(ValidationError, match="cannot read"):
        Settings(api_key_file=tmp_path / "missing")
    with pytest.raises(ValidationError, match="not both"):
        Settings(api_key="a", api_key_file=empty)
    with pytest.raises(ValidationError):
        Settings(api_key="")


def test_a_gpu_device_needs_a_gpu_share():
    with pytest.raises(ValidationError, match="num_gpus"):
        Settings(qa={"device": "cuda"})
    assert Settings(qa={"device": "cuda:0", "num_gpus": 1}).qa.device == "cuda:0"
