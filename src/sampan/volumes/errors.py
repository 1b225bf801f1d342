"""Volume errors, each carrying the HTTP status Docker answers it with."""

from __future__ import annotations

from ..errors import StatusError


class VolumeError(StatusError):
    """A volume operation failed (500 unless a subclass says otherwise)."""


class VolumeNotFound(VolumeError):
    status = 404


class VolumeInUse(VolumeError):
    status = 409


class InvalidVolume(VolumeError):
    status = 400
