"""A container's mounts: HostConfig.Binds, Mounts, Tmpfs, VolumesFrom and the image's and
the request's Config.Volumes turned into mount points (persisted with the container), the
volumes they name created and held, and the OCI ``mounts`` entries of its spec.

What docker checks at create time is checked here before anything is made (its messages,
so clients and scripts see what they know); named volumes are created on first use,
anonymous volumes for each declared VOLUME path not otherwise mounted. At start the
volumes are mounted (a driver may have a filesystem to mount), bind sources given with
``-v`` are created if missing, and a new empty volume gets a copy of what the image has at
its destination. The runtime resolves every destination inside the rootfs, so a symlink in
the image never leads a mount out onto the host.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..oci.decode import DecodeError, decode
from ..volumes import VolumeError, VolumeService
from ..volumes.driver import check_name as check_volume_name
from .errors import InvalidParameter, NotFound
from .record import Container

log = logging.getLogger("sampand")

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
DEFAULT_PROPAGATION = "rprivate"
TMPFS_DEFAULTS = ("nosuid", "nodev", "noexec")


# The API's Mount object (HostConfig.Mounts) ---------------------------------------------------

@dataclass
class BindOptions:
    propagation: str | None = field(default=None, metadata={"json": "Propagation"})
    non_recursive: bool | None = field(default=None, metadata={"json": "NonRecursive"})
    create_mountpoint: bool | None = field(default=None, metadata={"json": "CreateMountpoint"})


@dataclass
class DriverConfig:
    name: str | None = field(default=None, metadata={"json": "Name"})
    options: dict[str, str] | None = field(default=None, metadata={"json": "Options"})


@dataclass
class VolumeOptions:
    no_copy: bool | None = field(default=None, metadata={"json": "NoCopy"})
    labels: dict[str, str] | None = field(default=None, metadata={"json": "Labels"})
    driver_config: DriverConfig | None = field(default=None, metadata={"json": "DriverConfig"})
    subpath: str | None = field(default=None, metadata={"json": "Subpath"})


@dataclass
class TmpfsOptions:
    size_bytes: int | None = field(default=None, metadata={"json": "SizeBytes"})
    mode: int | None = field(default=None, metadata={"json": "Mode"})
    options: list[list[str]] | None = field(default=None, metadata={"json": "Options"})


@dataclass
class MountSpec:
    type: str | None = field(default=None, metadata={"json": "Type"})
    source: str | None = field(default=None, metadata={"json": "Source"})
    target: str | None = field(default=None, metadata={"json": "Target"})
    read_only: bool | None = field(default=None, metadata={"json": "ReadOnly"})
    consistency: str | None = field(default=None, metadata={"json": "Consistency"})
    bind_options: BindOptions | None = field(default=None, metadata={"json": "BindOptions"})
    volume_options: VolumeOptions | None = field(default=None,
                                                 metadata={"json": "VolumeOptions"})
    tmpfs_options: TmpfsOptions | None = field(default=None, metadata={"json": "TmpfsOptions"})


# A container's mount point, as stored in its record ---------------------------------------

@dataclass
class MountPoint:
    type: str  # bind | volume | tmpfs
    destination: str
    source: str = ""  # the host path (a bind's source, a volume's data directory)
    name: str = ""  # the volume's name
    driver: str = ""
    mode: str = ""  # as the client wrote it (-v), shown by inspect
    rw: bool = True
    propagation: str = ""
    copy_data: bool = False  # copy the image's content into the volume while it is empty
    anonymous: bool = False  # made for this container: `rm -v` removes it
    create_source: bool = False  # -v /host/path: made at start when missing
    non_recursive: bool = False
    tmpfs_options: list[str] = field(default_factory=list)
    # for a volume this container creates: what the request asked the driver for
    labels: dict[str, str] | None = None
    driver_options: dict[str, str] | None = None

    def to_api(self) -> dict[str, Any]:
        """Docker's MountPoint (inspect's and list's ``Mounts``)."""
        out: dict[str, Any] = {"Type": self.type}
        if self.name:
            out["Name"] = self.name
        out.update({"Source": self.source, "Destination": self.destination})
        if self.driver:
            out["Driver"] = self.driver
        out.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MountPoint:
        return cls(**data)


def mount_points(c: Container) -> list[MountPoint]:
    return [MountPoint.from_json(m) for m in c.mounts]


def api_mounts(c: Container) -> list[dict[str, Any]]:
    return [m.to_api() for m in mount_points(c)]


# Parsing (no side effects) ----------------------------------------------------------------

def _invalid(kind: str, message: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {message}')


def _destination(kind: str, path: str | None) -> str:
    if not path:
        raise _invalid(kind, "field Target must not be empty")
    if not path.startswith("/"):
        raise _invalid(kind, f"invalid mount path: '{path}' mount path must be absolute")
    clean = posixpath.normpath(path)
    if clean in ("/", "//"):
        raise InvalidParameter("invalid specification: destination can't be '/'")
    return clean


def _volume_name(name: str) -> str:
    try:
        check_volume_name(name)
    except VolumeError as exc:
        raise InvalidParameter(f"create {name}: {exc}") from None
    return name


def _parse_mode(mode: str) -> tuple[bool, str, bool]:
    """A -v mode (``ro,z,rshared,nocopy``): (rw, propagation, nocopy); z/Z accepted."""
    rw = True
    propagation = ""
    nocopy = False
    seen: set[str] = set()
    for opt in mode.split(",") if mode else []:
        group = ("rw" if opt in ("rw", "ro") else "label" if opt in ("z", "Z")
                 else "propagation" if opt in PROPAGATIONS else "copy" if opt == "nocopy"
                 else "consistency" if opt in ("consistent", "cached", "delegated")
                 else None)
        if group is None or group in seen:
            raise InvalidParameter(f"invalid mode: {mode}")
        seen.add(group)
        if group == "rw":
            rw = opt == "rw"
        elif group == "propagation":
            propagation = opt
        elif group == "copy":
            nocopy = True
    return rw, propagation, nocopy


def _is_mode(text: str) -> bool:
    try:
        _parse_mode(text)
    except InvalidParameter:
        return False
    return True


def parse_bind(raw: str) -> MountPoint:
    """One HostConfig.Binds entry: ``src:dst[:mode]``, ``name:dst[:mode]`` or ``dst``."""
    parts = raw.split(":")
    if not raw or len(parts) > 3 or any(p == "" for p in parts[:2]):
        raise InvalidParameter(f"invalid volume specification: '{raw}'")
    source, mode = "", ""
    if len(parts) == 1:
        dest = parts[0]
    elif len(parts) == 2 and _is_mode(parts[1]):
        dest, mode = parts
    elif len(parts) == 2:
        source, dest = parts
    else:
        source, dest, mode = parts
    rw, propagation, nocopy = _parse_mode(mode)
    if source.startswith("/"):
        return MountPoint(type="bind", destination=_destination("bind", dest),
                          source=posixpath.normpath(source), mode=mode, rw=rw,
                          propagation=propagation or DEFAULT_PROPAGATION,
                          create_source=True)
    if propagation:
        raise InvalidParameter(f"invalid mode: {mode}")
    return MountPoint(type="volume", destination=_destination("volume", dest),
                      name=_volume_name(source) if source else "",
                      mode=mode or ("z" if source else ""), rw=rw,
                      copy_data=not nocopy, anonymous=not source)


def parse_mount(raw: Any, index: int) -> MountPoint:
    """One HostConfig.Mounts entry, checked as dockerd checks it."""
    try:
        m = decode(MountSpec, raw, f"HostConfig.Mounts[{index}]")
    except DecodeError as exc:
        raise InvalidParameter(str(exc)) from None
    kind = m.type or ""
    rw = not m.read_only
    if kind == "bind":
        if m.volume_options is not None:
            raise _invalid(kind, "field VolumeOptions must not be specified")
        if m.tmpfs_options is not None:
            raise _invalid(kind, "field TmpfsOptions must not be specified")
        if not m.source:
            raise _invalid(kind, "field Source must not be empty")
        dest = _destination(kind, m.target)
        if not m.source.startswith("/"):
            raise _invalid(kind, f"invalid mount path: '{m.source}' mount path must be "
                           "absolute")
        bind = m.bind_options or BindOptions()
        propagation = bind.propagation or DEFAULT_PROPAGATION
        if propagation not in PROPAGATIONS:
            raise _invalid(kind, f"invalid propagation mode: {propagation}")
        source = posixpath.normpath(m.source)
        if not bind.create_mountpoint and not os.path.exists(source):
            raise _invalid(kind, f"bind source path does not exist: {source}")
        return MountPoint(type="bind", destination=dest, source=source, rw=rw,
                          propagation=propagation, non_recursive=bool(bind.non_recursive),
                          create_source=bool(bind.create_mountpoint))
    if kind == "volume":
        if m.bind_options is not None:
            raise _invalid(kind, "field BindOptions must not be specified")
        if m.tmpfs_options is not None:
            raise _invalid(kind, "field TmpfsOptions must not be specified")
        dest = _destination(kind, m.target)
        vopts = m.volume_options or VolumeOptions()
        if vopts.subpath:
            raise _invalid(kind, "VolumeOptions.Subpath is not supported")
        driver = (vopts.driver_config.name if vopts.driver_config else None) or ""
        if driver not in ("", "local"):
            raise InvalidParameter(f"error looking up volume plugin {driver}: plugin "
                                   f'"{driver}" not found')
        return MountPoint(type="volume", destination=dest,
                          name=_volume_name(m.source) if m.source else "", rw=rw,
                          copy_data=not vopts.no_copy, anonymous=not m.source,
                          labels=vopts.labels,
                          driver_options=vopts.driver_config.options
                          if vopts.driver_config else None)
    if kind == "tmpfs":
        if m.bind_options is not None:
            raise _invalid(kind, "field BindOptions must not be specified")
        if m.volume_options is not None:
            raise _invalid(kind, "field VolumeOptions must not be specified")
        if m.source:
            raise _invalid(kind, "field Source must not be specified")
        dest = _destination(kind, m.target)
        tmpfs = m.tmpfs_options or TmpfsOptions()
        options: list[str] = []
        if tmpfs.size_bytes is not None:
            if tmpfs.size_bytes < 0:
                raise _invalid(kind, "invalid tmpfs size")
            if tmpfs.size_bytes:
                options.append(f"size={tmpfs.size_bytes}")
        if tmpfs.mode:
            options.append(f"mode={tmpfs.mode & 0o7777:o}")
        for opt in tmpfs.options or []:
            options.append("=".join(opt))
        return MountPoint(type="tmpfs", destination=dest, rw=rw, tmpfs_options=options)
    raise _invalid(kind, "mount type unknown")


def parse_volumes_from(raw: str) -> tuple[str, bool | None]:
    """``container[:ro|rw]`` → (container, rw or None to keep each mount's)."""
    name, sep, mode = raw.partition(":")
    if not name:
        raise InvalidParameter(f"invalid volumes-from specification: '{raw}'")
    if not sep:
        return name, None
    if mode not in ("ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z"):
        raise InvalidParameter(f"invalid mode: {mode}")
    return name, None if mode in ("z", "Z") else mode.startswith("rw")


def _strings(raw: Any, name: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise InvalidParameter(f"{name}: expected an array of strings")
    return raw


def merged_volumes(config: dict[str, Any], image: dict[str, Any]) -> dict[str, Any] | None:
    """Config.Volumes with the image's VOLUME paths added (docker's merge)."""
    merged = {**(image.get("Volumes") or {}), **(config.get("Volumes") or {})}
    return merged or None


def plan(host: dict[str, Any], volumes: Iterable[str],
         lookup: Callable[[str], Container]) -> list[MountPoint]:
    """Every mount point of a new container, in docker's precedence: volumes-from, then
    Binds and Mounts (a destination twice among those is an error), then an anonymous
    volume for each declared path nobody mounted (Tmpfs included)."""
    by_dest: dict[str, MountPoint] = {}
    for raw in _strings(host.get("VolumesFrom"), "HostConfig.VolumesFrom"):
        ref, rw = parse_volumes_from(raw)
        try:
            source = lookup(ref)
        except NotFound as exc:  # dockerd answers this one with a 400
            raise InvalidParameter(str(exc)) from None
        for mp in mount_points(source):
            if mp.type == "tmpfs":
                continue
            by_dest[mp.destination] = MountPoint(
                type=mp.type, destination=mp.destination, source=mp.source, name=mp.name,
                driver=mp.driver, mode=mp.mode, rw=mp.rw if rw is None else rw,
                propagation=mp.propagation, non_recursive=mp.non_recursive)
    explicit: set[str] = set()
    binds = [parse_bind(b) for b in _strings(host.get("Binds"), "HostConfig.Binds")]
    raw_mounts = host.get("Mounts") or []
    if not isinstance(raw_mounts, list):
        raise InvalidParameter("HostConfig.Mounts: expected an array")
    for mp in [*binds, *(parse_mount(m, i) for i, m in enumerate(raw_mounts))]:
        if mp.destination in explicit:
            raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
        explicit.add(mp.destination)
        by_dest[mp.destination] = mp
    tmpfs = host.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict):
        raise InvalidParameter("HostConfig.Tmpfs: expected an object")
    covered = set()
    for target in tmpfs:
        dest = _destination("tmpfs", target)
        if dest in explicit:
            raise InvalidParameter(f"Duplicate mount point: {dest}")
        covered.add(dest)
    for path in volumes:
        dest = _destination("volume", path)
        if dest not in by_dest and dest not in covered:
            by_dest[dest] = MountPoint(type="volume", destination=dest, copy_data=True,
                                       anonymous=True)
    return list(by_dest.values())


# The service the container life cycle calls ----------------------------------------------

class Mounts:
    def __init__(self, volumes: VolumeService) -> None:
        self.volumes = volumes

    def create(self, container_id: str, host: dict[str, Any], config: dict[str, Any],
               image: dict[str, Any], lookup: Callable[[str], Container],
               ) -> list[dict[str, Any]]:
        """The mount points of a new container, its volumes created and held; on any
        error nothing is left made or held. Sets ``config["Volumes"]`` (merged)."""
        config["Volumes"] = merged_volumes(config, image)
        points = plan(host, (config["Volumes"] or {}).keys(), lookup)
        made: list[str] = []
        held: list[str] = []
        try:
            for mp in points:
                if mp.type != "volume":
                    continue
                volume, created = self.volumes.create(
                    mp.name, labels=mp.labels, options=mp.driver_options, ref=container_id)
                held.append(volume.name)
                if created:
                    made.append(volume.name)
                mp.name, mp.source, mp.driver = volume.name, volume.mountpoint, volume.driver
                mp.labels = mp.driver_options = None
        except BaseException:
            for name in held:
                self.volumes.release(name, container_id)
            for name in made:
                try:
                    self.volumes.remove(name)
                except VolumeError as exc:
                    log.warning("rolling back volume %s: %s", name, exc)
            raise
        return [asdict(mp) for mp in points]

    def setup(self, c: Container, rootfs: str) -> list[tuple[str, str]]:
        """Before a start: volumes mounted, ``-v`` bind sources made. Returns the copy-ups
        to do, (source in the rootfs, volume path), for ``copy_up`` (slow: a thread's)."""
        from ..runtime.rootfs import secure_join

        copies = []
        for mp in mount_points(c):
            if mp.type == "bind" and not os.path.exists(mp.source):
                if not mp.create_source:
                    raise _invalid("bind", f"bind source path does not exist: {mp.source}")
                os.makedirs(mp.source, 0o755, exist_ok=True)
            elif mp.type == "volume":
                path = self.volumes.mount(mp.name, c.id)
                if mp.copy_data:
                    copies.append((secure_join(rootfs, mp.destination), path))
        return copies

    def teardown(self, c: Container) -> None:
        """After a run: the container's hold on its volumes' mounts is dropped."""
        for mp in mount_points(c):
            if mp.type == "volume":
                try:
                    self.volumes.unmount(mp.name, c.id)
                except (VolumeError, OSError) as exc:
                    log.warning("unmounting volume %s: %s", mp.name, exc)

    def release(self, c: Container, remove_anonymous: bool) -> None:
        """At removal: the volumes are no longer the container's; with ``rm -v`` (and
        ``--rm``) its anonymous volumes go too, named ones never."""
        for mp in mount_points(c):
            if mp.type != "volume":
                continue
            self.volumes.release(mp.name, c.id)
            if remove_anonymous and mp.anonymous:
                try:
                    self.volumes.remove(mp.name, force=True)
                except VolumeError as exc:
                    log.warning("removing volume %s of %s: %s", mp.name, c.id[:12], exc)

    def adopt(self, c: Container) -> None:
        """At daemon start: hold the volumes of a stored container again (and the mounts of
        a running one)."""
        for mp in mount_points(c):
            if mp.type != "volume":
                continue
            try:
                self.volumes.acquire(mp.name, c.id)
                if c.state.running:
                    self.volumes.mount(mp.name, c.id)
            except (VolumeError, OSError) as exc:
                log.warning("container %s: volume %s: %s", c.id[:12], mp.name, exc)


def copy_up_all(copies: list[tuple[str, str]]) -> None:
    from ..volumes.copyup import copy_up

    for source, volume in copies:
        copy_up(source, volume)


# The OCI spec's entries ------------------------------------------------------------------

def oci_mounts(c: Container) -> list[dict[str, Any]]:
    """The spec's mounts for the container's mount points and HostConfig.Tmpfs, parents
    before children (docker sorts by depth)."""
    out: list[dict[str, Any]] = []
    for mp in mount_points(c):
        if mp.type == "tmpfs":
            out.append({"destination": mp.destination, "type": "tmpfs", "source": "tmpfs",
                        "options": [*TMPFS_DEFAULTS, *mp.tmpfs_options,
                                    *([] if mp.rw else ["ro"])]})
            continue
        options = ["bind" if mp.non_recursive else "rbind",
                   mp.propagation or DEFAULT_PROPAGATION]
        if not mp.rw:
            options.append("ro")
        out.append({"destination": mp.destination, "type": "bind", "source": mp.source,
                    "options": options})
    for target, opts in (c.host_config.get("Tmpfs") or {}).items():
        out.append({"destination": posixpath.normpath(target), "type": "tmpfs",
                    "source": "tmpfs",
                    "options": [*TMPFS_DEFAULTS, *(o for o in str(opts).split(",") if o)]})
    out.sort(key=lambda m: len([p for p in m["destination"].split("/") if p]))
    return out
