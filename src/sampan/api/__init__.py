"""The Docker Engine API over HTTP (aiohttp), served by sampand."""

from .server import API_VERSION, MIN_API_VERSION, make_app

__all__ = ["API_VERSION", "MIN_API_VERSION", "make_app"]
