"""Build errors: what the client sees in the stream's errorDetail."""

from __future__ import annotations

from ..errors import StatusError


class BuildError(StatusError):
    """A build that cannot go on; ``code`` is a failing RUN's exit code (else 1)."""

    status = 400

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
