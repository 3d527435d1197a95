"""The model card without Ray: a section for every shipped artifact, and the route on a bare app (served as
Markdown, a missing file a 404 in the error envelope, documented in OpenAPI). Over real HTTP: test_api.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.http.edge import Edge
from service.http.routes import api_app, front_router
from service.protocol import CARD_ROUTE, card_link
from service.settings import PACKAGE_MODELS, SOURCE_MODEL_CARD, Settings

ARTIFACTS = sorted(PACKAGE_MODELS.glob("*/attention_serve.json"))


async def _unused():  # pragma: no cover - these tests never ask the models
    raise AssertionError


def _client(card_file: Path) -> TestClient:
    settings = Settings()
    return TestClient(api_app(settings, Edge(settings), front_router(_unused, _unused, card_file)))


@pytest.mark.parametrize("artifact", ARTIFACTS, ids=lambda p: p.parent.name)
def test_card_has_a_section_for_every_shipped_artifact(artifact):
    """A retrained artifact (new version) needs its own section, or /v1/models links to nothing."""
    meta = json.loads(artifact.read_text())
    anchor = f'id="{meta["model_id"]}-{meta["version"]}"'
    assert anchor in SOURCE_MODEL_CARD.read_text(), f"docs/models.md has no {anchor} for {artifact.parent.name}"


def test_artifacts_are_found():
    assert {p.parent.name for p in ARTIFACTS} >= {"sentiment", "qa"}


def test_card_is_served_as_markdown(tmp_path):
    card = tmp_path / "models.md"
    card.write_text('# Model card\n<a id="m-1"></a>\n## m, version 1 — café\n', encoding="utf-8")
    reply = _client(card).get(CARD_ROUTE)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/markdown; charset=utf-8"
    assert reply.text == card.read_text(encoding="utf-8")


def test_missing_card_is_a_404_saying_where_it_looked(tmp_path):
    missing = tmp_path / "nowhere" / "models.md"
    reply = _client(missing).get(CARD_ROUTE)
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "not_found"
    assert str(missing) in error["message"]


def test_openapi_documents_the_card_route(tmp_path):
    route = _client(tmp_path / "models.md").get("/openapi.json").json()["paths"][CARD_ROUTE]["get"]
    assert "text/markdown" in route["responses"]["200"]["content"]
    assert route["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert route["description"]


def test_the_link_follows_the_path_prefix_and_the_setting_the_file(monkeypatch, tmp_path):
    assert card_link("", "m", "2") == "/v1/models/card#m-2"
    assert card_link("/tight", "m", "2") == "/tight/v1/models/card#m-2"
    monkeypatch.delenv("ATTENTION_SERVE_MODEL_CARD", raising=False)
    assert Settings().model_card_file() == SOURCE_MODEL_CARD
    monkeypatch.setenv("ATTENTION_SERVE_MODEL_CARD", str(tmp_path / "card.md"))  # as the Dockerfile sets it
    assert Settings().model_card_file() == tmp_path / "card.md"
