"""Registry errors, worded as dockerd words them.

A user who types the same wrong name into `docker pull` and `sampan pull` should read the
same complaint, so the messages follow Go's ``url.Error`` (``Get "URL": cause``) and the
distribution error codes (``manifest unknown: manifest unknown``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorInfo:
    """One entry of a registry's ``{"errors": [...]}`` body."""

    code: str
    message: str
    detail: Any = None

    def __str__(self) -> str:
        # errcode.Error.Error(): the code lowercased with spaces, then the message.
        code = self.code.lower().replace("_", " ")
        return f"{code}: {self.message}" if self.message else code


class RegistryError(Exception):
    """A registry operation failed; ``str()`` is the message to show."""

    def __init__(self, message: str, *, status: int | None = None,
                 errors: tuple[ErrorInfo, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors

    @property
    def codes(self) -> set[str]:
        return {e.code for e in self.errors}


class RegistryConnectionError(RegistryError):
    """The registry cannot be reached (refused, TLS failure, timeout, DNS)."""


class Unauthorized(RegistryError):
    """Missing or wrong credentials, or access denied (HTTP 401/403)."""


class NotFound(RegistryError):
    """The registry does not know the manifest, blob or repository (HTTP 404)."""


class ManifestUnknown(NotFound):
    """No manifest for that tag or digest: ``manifest unknown``."""


class VerificationError(RegistryError):
    """Content does not match its digest or size; nothing of it was stored."""


class UnsupportedManifest(RegistryError):
    """A manifest sampan cannot use (schema 1, an artifact, no matching platform)."""


def parse_error_body(body: bytes) -> tuple[ErrorInfo, ...]:
    """The ``errors`` of a distribution error response (empty if the body is not one)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    if not isinstance(doc, dict):
        return ()
    out = []
    for item in doc.get("errors") or ():
        if isinstance(item, dict) and isinstance(item.get("code"), str):
            message = item.get("message")
            out.append(ErrorInfo(item["code"], message if isinstance(message, str) else "",
                                 item.get("detail")))
    if not out:  # token servers answer {"details": "incorrect username or password"}
        detail = doc.get("details") or doc.get("detail") or doc.get("message")
        if isinstance(detail, str) and detail:
            out.append(ErrorInfo("UNAUTHORIZED", detail))
    return tuple(out)


def join_errors(errors: tuple[ErrorInfo, ...]) -> str:
    return "; ".join(str(e) for e in errors)
