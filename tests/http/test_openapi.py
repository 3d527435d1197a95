"""The public contract changes only on purpose: the OpenAPI document the front serves is the snapshot's.

When it is not, the test shows the difference; if the change is meant, rewrite the snapshot with the command it names
and commit tests/http/openapi.json with the change, so the review shows the contract's change too.
"""

from __future__ import annotations

import difflib

from tests.http.openapi_snapshot import REWRITE_COMMAND, SNAPSHOT, render, served_document

MAX_DIFF_LINES = 120


def test_the_openapi_document_is_the_snapshot():
    served = render(served_document())
    assert SNAPSHOT.exists(), f"no snapshot of the OpenAPI document yet: write it with `{REWRITE_COMMAND}`"
    snapshot = SNAPSHOT.read_text()
    if served == snapshot:
        return
    diff = list(
        difflib.unified_diff(
            snapshot.splitlines(), served.splitlines(), "tests/http/openapi.json", "served /openapi.json", lineterm=""
        )
    )
    shown = "\n".join(diff[:MAX_DIFF_LINES])
    if len(diff) > MAX_DIFF_LINES:
        shown += f"\n... {len(diff) - MAX_DIFF_LINES} more lines of difference"
    raise AssertionError(
        f"the API's OpenAPI document differs from its snapshot:\n{shown}\n\n"
        f"If the change is intended, rewrite the snapshot with `{REWRITE_COMMAND}` and commit it with the change."
    )


def test_the_document_describes_every_route_of_the_api():
    paths = served_document()["paths"]
    assert {"/v1/sentiment", "/v1/qa", "/v1/models", "/v1/models/card", "/healthz", "/readyz"} <= set(paths)
    for route in ("/v1/sentiment", "/v1/qa"):
        assert {"200", "401", "408", "413", "415", "422", "429", "503", "504"} <= set(paths[route]["post"]["responses"])


def test_rendering_is_deterministic():
    document = served_document()
    assert render(document) == render(served_document())
    assert render(document) == render(dict(reversed(list(document.items()))))
