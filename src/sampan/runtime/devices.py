"""The devices every container gets, and the device cgroup rules that let it use them.

Both sides need them: the runtime writes the rules into the container's cgroup, the init
creates the nodes. Here, not in rootfs.py, so that the runtime loads no more than this.
"""

from __future__ import annotations

from ..oci.spec import Device, DeviceCgroup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..oci.spec import Spec

DEFAULT_DEVICES = (
    Device(type="c", path="/dev/null", major=1, minor=3, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/zero", major=1, minor=5, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/full", major=1, minor=7, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/random", major=1, minor=8, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/urandom", major=1, minor=9, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/tty", major=5, minor=0, file_mode=0o666, uid=0, gid=0),
)


# What runc's device cgroup always allows after the config's own rules (specconv's
# AllowedDevices): mknod of anything, the default nodes, ptys, and /dev/net/tun.
DEFAULT_DEVICE_RULES = (
    DeviceCgroup(allow=True, type="c", access="m"),
    DeviceCgroup(allow=True, type="b", access="m"),
    *(DeviceCgroup(allow=True, type="c", major=d.major, minor=d.minor, access="rwm")
      for d in DEFAULT_DEVICES),
    DeviceCgroup(allow=True, type="c", major=136, access="rwm"),  # /dev/pts/*
    DeviceCgroup(allow=True, type="c", major=5, minor=2, access="rwm"),  # /dev/ptmx
    DeviceCgroup(allow=True, type="c", major=10, minor=200, access="rwm"),  # /dev/net/tun
)


def device_rules(spec: Spec) -> list[DeviceCgroup]:
    """The device cgroup rules of a container: the config's, then linux.devices, then
    the defaults, in runc's order (so a config cannot deny /dev/null by accident)."""
    linux = spec.linux
    rules = list((linux.resources.devices if linux and linux.resources else None) or [])
    rules += [DeviceCgroup(allow=True, type="c" if d.type == "u" else d.type, major=d.major,
                           minor=d.minor, access="rwm")
              for d in (linux.devices if linux else None) or [] if d.type != "p"]
    rules += DEFAULT_DEVICE_RULES
    return rules
