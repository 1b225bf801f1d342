"""Engine errors carry the HTTP status Docker answers them with, so the API layer only maps."""

from __future__ import annotations

from ..errors import StatusError


class EngineError(StatusError):
    """A failure of the engine the client should see."""


class InvalidParameter(EngineError):
    status = 400


class NotFound(EngineError):
    status = 404


class Conflict(EngineError):
    status = 409


class NotModified(EngineError):
    """Start of a running or stop of a stopped container: Docker's 304, no body."""

    status = 304
