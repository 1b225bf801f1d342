"""Network errors carry Docker's HTTP status, so the engine and API only map them."""

from __future__ import annotations

from ..errors import StatusError


class NetworkError(StatusError):
    """A failure of the network library the client should see."""


class InvalidRequest(NetworkError):
    """A malformed subnet, address or port specification."""

    status = 400


class Conflict(NetworkError):
    """An address, subnet or host port that is already taken."""

    status = 409


class Exhausted(NetworkError):
    """No subnet left in the pools or no address left in a subnet."""

    status = 503


class NotFound(NetworkError):
    status = 404
