"""Named volumes: the local driver (directories under <data-root>/volumes, or a filesystem
mounted there from type/device/o options), the service that names, counts and prunes them,
and the copy of an image's content into a new volume."""

from .driver import LocalDriver
from .errors import InvalidVolume, VolumeError, VolumeInUse, VolumeNotFound
from .record import ANONYMOUS_LABEL, Volume
from .service import VolumeService

__all__ = ["ANONYMOUS_LABEL", "InvalidVolume", "LocalDriver", "Volume", "VolumeError",
           "VolumeInUse", "VolumeNotFound", "VolumeService"]
