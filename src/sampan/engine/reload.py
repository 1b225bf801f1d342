"""SIGHUP: daemon.json read again and its reloadable keys applied, as dockerd's Reload
(daemon/reload.go): ``debug``, ``labels``, ``insecure-registries``, ``registry-mirrors``,
``live-restore``, ``runtimes`` and ``default-runtime``. The file is checked as at start
(unknown keys, bad values, a key also given as a flag); a file that does not pass is
logged and the running configuration kept. A key the file no longer sets keeps its
value (dockerd's IsValueSet); other keys (data-root, hosts, …) need a restart and are left
alone. Success is logged with the new values and published as the ``daemon reload`` event,
its attributes the reloadable settings as dockerd formats them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from .daemonconfig import ConfigError, DaemonConfig, all_runtimes, load_file, merge
from .events import Event
from .runtimes import RuntimeInfo

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("sampand")

RELOADABLE = ("debug", "labels", "insecure-registries", "registry-mirrors", "live-restore",
              "runtimes", "default-runtime")


def engine_id(data_root: str) -> str:
    """The daemon's ID (docker info's ID, the Actor of daemon events): a UUID kept in
    <data-root>/engine-id, as dockerd keeps it, written once (temp file, rename)."""
    path = os.path.join(data_root, "engine-id")
    try:
        with open(path) as f:
            found = f.read().strip()
        if found:
            return found
    except FileNotFoundError:
        pass
    ident = str(uuid.uuid4())
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "w") as f:
        f.write(ident)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    return ident


def _slice(values: list[str]) -> str:
    return json.dumps(values, separators=(",", ":"))


def reload(engine: Engine, current: DaemonConfig, path: str, flags: dict[str, Any],
           ) -> DaemonConfig | None:
    """Apply the file's reloadable keys; the new configuration, or None when the file
    is refused (logged; nothing changed)."""
    try:
        file = load_file(path, required=False)
        loaded = merge(flags, file)
    except ConfigError as exc:
        log.error("Error reconfiguring the daemon: unable to configure the daemon with file "
                  "%s: %s", path, exc)
        return None
    given = set(file) | set(flags)
    new = DaemonConfig(**{f: getattr(current, f) for f in current.__dataclass_fields__})
    for key in RELOADABLE:
        if key in given:
            attr = key.replace("-", "_")
            setattr(new, attr, getattr(loaded, attr))
    options = engine.options
    options.debug, options.labels = new.debug, list(new.labels)
    options.insecure_registries = list(new.insecure_registries)
    options.registry_mirrors = list(new.registry_mirrors)
    options.live_restore = new.live_restore
    runtimes = {name: RuntimeInfo(e.path, tuple(e.runtime_args or ()))
                for name, e in all_runtimes(new).items()}
    engine.runtimes.replace(runtimes, new.default_runtime)
    options.default_runtime = new.default_runtime
    logging.getLogger().setLevel(logging.DEBUG if new.debug else logging.INFO)
    attributes = {
        "debug": str(new.debug).lower(), "labels": _slice(new.labels),
        "insecure-registries": _slice(new.insecure_registries),
        "registry-mirrors": _slice(new.registry_mirrors),
        "live-restore": str(new.live_restore).lower(),
        "runtimes": " ".join(f"{name}:{info.path}" for name, info in sorted(runtimes.items())),
        "default-runtime": new.default_runtime, "name": socket.gethostname()}
    log.info("Reloaded configuration: %s", json.dumps(
        {k: attributes[k] for k in RELOADABLE}, sort_keys=True))
    engine.events.publish(Event("daemon", "reload", engine_id(options.data_root), attributes))
    return new
