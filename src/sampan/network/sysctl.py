"""Reading and writing /proc/sys, returning old values so callers can record or restore."""

from __future__ import annotations


def _path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read(key: str) -> str:
    with open(_path(key)) as f:
        return f.read().strip()


def write(key: str, value: str) -> str:
    """Set ``key`` and return its previous value, so the caller can record it."""
    old = read(key)
    if old != value:
        with open(_path(key), "w") as f:
            f.write(value)
    return old


def enable_ip6_forward() -> str:
    """Turn on IPv6 forwarding (dual-stack networks need it, as dockerd does); the
    previous value back. It is the host-wide switch: a host taking its default route
    from router advertisements keeps it only with accept_ra=2 on that interface."""
    return write("net.ipv6.conf.all.forwarding", "1")


def enable_ip_forward() -> str:
    """Turn on IPv4 forwarding (bridged containers need it); the previous value back."""
    return write("net.ipv4.ip_forward", "1")
