"""rtnl's batches against the real kernel: every message answered, errors in order."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface

import pytest

from sampan.network import netlink, rtnl
from tests.network.conftest import Netns


def test_a_batch_applies_every_message_and_raises_the_first_error(
    make_netns: Callable[[], Netns],
) -> None:
    ns = make_netns()
    fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netlink.in_netns(fd):
            sock = rtnl.Socket()
    finally:
        os.close(fd)
    address = IPv4Interface("10.231.99.2/32")
    with sock, pytest.raises(OSError) as raised:
        sock.request([
            rtnl.add_address(rtnl.LOOPBACK_INDEX, address),
            rtnl.add_address(rtnl.LOOPBACK_INDEX, address),  # EEXIST: tolerated
            rtnl.add_default_route(rtnl.LOOPBACK_INDEX, IPv4Address("10.231.98.1")),
            rtnl.link_up(rtnl.LOOPBACK_INDEX),
            rtnl.add_default_route(rtnl.LOOPBACK_INDEX, IPv4Address("10.231.97.1")),
        ])
    # the first failure of the two, with what it was doing; the messages after it ran
    assert raised.value.errno == errno.ENETUNREACH
    assert "adding the default route via 10.231.98.1" in str(raised.value)
    assert "inet 10.231.99.2/32" in ns.run("ip", "-4", "-o", "addr", "show", "lo").stdout
    assert "UP" in ns.run("ip", "-o", "link", "show", "lo").stdout.split(">")[0]
