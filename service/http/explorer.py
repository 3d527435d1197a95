"""The attention explorer: a page the service serves itself (GET /explore) that calls the public API.

Three static files from the package (service/explorer/), read once when the router is made. The page is plain
HTML, CSS and one script: no build step, nothing fetched from another origin. Its Content-Security-Policy
forbids inline script and inline style attributes; the script sets colours through the CSSOM, which CSP allows.
Imports neither Ray nor torch, so any FastAPI app can mount it: `app.include_router(explorer_router())`.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

PAGE = "index.html"  # only at /explore: its relative links (explore/explorer.js, v1/sentiment) resolve from there
ASSETS = {  # every file /explore/{asset} serves, with its type; any other name is a 404 (so no path traversal)
    "explorer.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # the page changes with the package; revalidate rather than serve a stale copy
}
# For the app's OpenAPI description, so /docs links to the page.
DOCS_LINK = "Try it in a browser: the [attention explorer](explore)."  # relative: right under any route prefix


def _read_files() -> dict[str, bytes]:
    folder = files("service") / "explorer"
    return {name: (folder / name).read_bytes() for name in (PAGE, *ASSETS)}


def explorer_router() -> APIRouter:
    """GET /explore (the page) and GET /explore/{asset} (its script and style sheet)."""
    contents = _read_files()
    router = APIRouter(include_in_schema=False)

    def serve(name: str, media_type: str) -> Response:
        return Response(contents[name], media_type=media_type, headers=SECURITY_HEADERS)

    @router.get("/explore")
    def explore_page() -> Response:
        return serve(PAGE, "text/html; charset=utf-8")

    @router.get("/explore/{asset}")
    def explore_asset(asset: str) -> Response:
        if asset not in ASSETS:
            raise HTTPException(status_code=404)
        return serve(asset, ASSETS[asset])

    return router
