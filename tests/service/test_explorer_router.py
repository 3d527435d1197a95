"""The explorer's router on a bare FastAPI app (no Ray, no browser): headers, asset types, nothing else served,
and a page that needs nothing from another origin and no inline script or style."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.http.explorer import explorer_router


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(explorer_router())
    return TestClient(app)


def test_page_is_served_with_a_strict_content_security_policy(client):
    page = client.get("/explore")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["base-uri"] == policy["form-action"] == policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("asset", "content_type"),
    [("explorer.js", "text/javascript; charset=utf-8"), ("explorer.css", "text/css; charset=utf-8")],
)
def test_assets_have_their_types(client, asset, content_type):
    reply = client.get(f"/explore/{asset}")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == content_type
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.content


@pytest.mark.parametrize(
    "path",
    [
        "/explore/nope.js",
        "/explore/index.html",  # the page lives at /explore only, where its relative links resolve
        "/explore/__init__.py",
        "/explore/../http/explorer.py",
        "/explore/..%2Fhttp%2Fexplorer.py",
        "/explore/%2E%2E%2F%2E%2E%2Fpyproject.toml",
        "/explore/..",
        "/explore/explorer.js%00.py",
        "/explore/explorer.js%2F..",
    ],
)
def test_only_the_known_files_are_served(client, path):
    reply = client.get(path)
    assert reply.status_code == 404, path
    assert b"import" not in reply.content and b"[project]" not in reply.content


def test_routes_are_left_out_of_the_api_schema(client):
    assert not [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/explore")]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.tags and self.tags[-1][0] == "script" and data.strip():
            self.inline_script = True


def test_page_loads_nothing_from_elsewhere_and_nothing_inline(client):
    page = _Page()
    page.feed(client.get("/explore").text)
    assert not page.inline_script
    assert ("script", {"src": "explore/explorer.js", "defer": None}) in page.tags
    assert ("link", {"rel": "stylesheet", "href": "explore/explorer.css"}) in page.tags
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag  # CSP forbids inline styles: the script sets them through the CSSOM
        assert not [a for a in attrs if a.startswith("on")], tag  # nor inline handlers
        assert tag not in {"style", "iframe", "object", "embed"}
        for name in ("src", "href"):
            link = attrs.get(name) or ""
            assert "//" not in link, link  # no other origin: works offline
    for asset in ("explorer.js", "explorer.css"):
        text = client.get(f"/explore/{asset}").text
        assert "http://" not in text and "https://" not in text and "@import" not in text
        assert "innerHTML" not in text and "eval(" not in text


def test_router_imports_neither_ray_nor_torch_nor_the_gateway():
    code = (
        "import sys, service.http.explorer\n"
        "print(sorted(m for m in ('ray', 'torch', 'service.gateway') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
