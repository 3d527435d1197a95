"""deploy/serve_config.yaml is what users `serve deploy`: it must be valid for Ray and for our settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from service.settings import BatchSettings, DeploymentSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "deploy" / "serve_config.yaml").read_text())


def test_ray_accepts_the_config():
    schema = ServeDeploySchema.model_validate(CONFIG)
    assert [app.import_path for app in schema.applications] == ["service.app:build_app"]


def test_args_are_valid_settings_and_deployments_exist():
    app = CONFIG["applications"][0]
    Settings(**app.get("args", {}))
    names = {d["name"] for d in app["deployments"]}
    assert names == {"Gateway", "SentimentModel", "QAModel"}
    for deployment in app["deployments"]:
        if "user_config" in deployment:
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
        "gateway_max_ongoing_requests",
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
    with pytest.raises(ValidationError, match="gateway_max_inflight"):
        Settings(gateway_max_inflight=600)
