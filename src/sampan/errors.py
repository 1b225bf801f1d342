"""The root of the errors a client should see, each carrying Docker's HTTP status for it.

The engine and the network library raise their own subclasses; the API layer maps any of
them to a status and a ``{"message": ...}`` body without knowing where it came from.
"""

from __future__ import annotations


class StatusError(Exception):
    """A failure the client should see; ``status`` is Docker's status code for it."""

    status = 500


def os_error_text(exc: OSError) -> str:
    """An OSError as dockerd's Go errors read: "<path>: no space left on device" (the
    errno's text in lower case, as Go's syscall.Errno prints it)."""
    reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"{exc.filename}: {reason}" if exc.filename else reason
