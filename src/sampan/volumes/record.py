"""A volume as stored (one JSON file per volume) and as the API shows it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

DRIVER = "local"
# Docker marks volumes created without a name; prune removes only those unless all=true.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def now_rfc3339() -> str:
    """Docker's volume CreatedAt: RFC 3339, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Volume:
    name: str
    created_at: str
    mountpoint: str
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    driver: str = DRIVER

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.labels or {})

    def to_json(self) -> dict[str, Any]:
        """What is stored: the API's fields but the Mountpoint, which follows the root."""
        return {"Name": self.name, "Driver": self.driver, "CreatedAt": self.created_at,
                "Labels": self.labels, "Options": self.options}

    @classmethod
    def from_json(cls, data: dict[str, Any], mountpoint: str) -> Volume:
        return cls(name=str(data["Name"]), created_at=str(data.get("CreatedAt") or ""),
                   mountpoint=mountpoint, labels=data.get("Labels"),
                   options=data.get("Options"), driver=str(data.get("Driver") or DRIVER))

    def to_api(self) -> dict[str, Any]:
        """Docker's Volume object (swagger: Volume)."""
        return {"CreatedAt": self.created_at, "Driver": self.driver, "Labels": self.labels,
                "Mountpoint": self.mountpoint, "Name": self.name, "Options": self.options,
                "Scope": "local"}
