"""The API's OpenAPI document as the front application serves it at /openapi.json, and its snapshot beside this file.

    .venv/bin/python -m tests.http.openapi_snapshot     # rewrite tests/http/openapi.json after an intended change

Built in this process, without Ray: the front's app with the document of every route (service.http.routes.openapi_app,
what service/ingress.py's Front serves), asked for /openapi.json through the HTTP edge. Written with sorted keys and
a fixed indentation, so the snapshot changes only when the contract does; its only version string is the project's.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

SNAPSHOT = Path(__file__).with_name("openapi.json")
REWRITE_COMMAND = ".venv/bin/python -m tests.http.openapi_snapshot"


def served_document() -> dict:
    from service.http.edge import Edge
    from service.http.routes import api_app, front_router, openapi_app
    from service.settings import Settings

    # The defaults, whatever this environment sets: the document does not depend on them (the API at /).
    settings = Settings.model_construct()

    async def models():
        raise AssertionError("the document is built without asking for models")

    async def readiness():
        raise AssertionError("the document is built without asking for readiness")

    front = api_app(settings, Edge(settings), front_router(models, readiness))
    front.openapi = openapi_app(settings, models, readiness).openapi  # type: ignore[method-assign]

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=front)
        async with httpx.AsyncClient(transport=transport, base_url="http://front") as client:
            return await client.get("/openapi.json")

    response = asyncio.run(fetch())
    response.raise_for_status()
    return response.json()


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    text = render(served_document())
    if SNAPSHOT.exists() and SNAPSHOT.read_text() == text:
        print(f"{SNAPSHOT} is up to date")  # noqa: T201
    else:
        SNAPSHOT.write_text(text)
        print(f"wrote {SNAPSHOT}: review the change with `git diff tests/http/openapi.json`")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
