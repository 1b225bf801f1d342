"""``--init`` (HostConfig.Init): a real init as PID 1, as dockerd's docker-init.

Docker ships tini as ``docker-init``; we use Debian's tini, its static build when there is
one (the container's libc may be missing or another), bind-mounted read-only at
``/sbin/docker-init`` and run as ``docker-init -- <command>``, so it reaps zombies and
forwards signals to the command.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from .errors import InvalidParameter

INIT_PATH = "/sbin/docker-init"
CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini")


def init_binary() -> str:
    for path in CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("tini-static") or shutil.which("tini")
    if found is None:
        raise InvalidParameter("HostConfig.Init: no init binary (install Debian's tini)")
    return found


def apply(spec: dict[str, Any]) -> None:
    """Make the spec run its command under the init."""
    process = spec["process"]
    process["args"] = [INIT_PATH, "--", *process["args"]]
    spec["mounts"].append({"destination": INIT_PATH, "type": "bind", "source": init_binary(),
                           "options": ["bind", "ro"]})
