"""``GET /playground``: a browser client of the public API, served with its assets."""

from gateway.playground.routes import playground_router

__all__ = ["playground_router"]
