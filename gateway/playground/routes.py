"""The playground's page and its static assets, all shipped inside the package (no CDN)."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"

# The page may only talk to the gateway it came from, so the API key goes nowhere else;
# images and videos given by URL are previewed from wherever they live.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src * data: blob:; media-src * data: blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# Small files that change with each release: revalidate rather than run a stale script.
_NO_CACHE = CacheControlHeader(no_cache=True)


# Read once: serving the page costs no file I/O on the event loop.
_HTML = (STATIC_DIR / "index.html").read_bytes()


@get("/", name="playground", cache_control=_NO_CACHE)
async def page() -> Response[bytes]:
    """The playground's HTML."""
    return Response(
        _HTML,
        media_type="text/html; charset=utf-8",
        headers={"content-security-policy": _CSP},
    )


playground_router = Router(
    path="/playground",
    route_handlers=[
        page,
        create_static_files_router(
            path="/static",
            directories=[STATIC_DIR],
            name="playground-static",
            cache_control=_NO_CACHE,
        ),
    ],
)
