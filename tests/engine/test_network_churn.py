"""Churn through sampand (issue 5, check 4): 100 ``run --rm`` with ``-p`` on a user network,
then the network removed: the host's links, addresses, routes, sampan's rules (with either
firewall backend), network namespaces and mounts (the daemon's, and every nsfs mount) are
as they were before."""

from __future__ import annotations

import glob
import json
import os
import subprocess

from tests.engine.conftest import Daemon
from tests.engine.test_network_modes import firewall_rules, net_daemon

__all__ = ["net_daemon"]
RUNS = 100


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def our_namespaces(d: Daemon) -> set[str]:
    """Network namespaces of processes in the daemon's containers' cgroups (other helpers'
    processes on this VM come and go with namespaces of their own)."""
    found = set()
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{proc}/cgroup") as f:
                if d.cgroup_parent + "/" in f.read():
                    found.add(os.readlink(f"{proc}/ns/net"))
        except OSError:
            continue
    return found


def host_state(d: Daemon) -> dict[str, object]:
    links = sorted((link["ifname"], link.get("master"))
                   for link in json.loads(_run("ip", "-j", "link", "show")))
    namespaces = our_namespaces(d)
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(line.split()[4] for line in f
                        if d.base in line or line.split(" - ")[1].startswith("nsfs "))
    ipam = json.loads(_run("cat", f"{d.data_root}/network/ipam.json") or "{}")
    return {
        "links": links,
        "addresses": _run("ip", "-o", "addr", "show"),
        "routes": _run("ip", "route", "show", "table", "all").replace(" linkdown", ""),
        "table": firewall_rules(d),
        "namespaces": namespaces,
        "mounts": mounts,
        "allocated": {n: s["allocated"] for n, s in ipam.get("networks", {}).items()},
    }


def test_churn_leaves_the_host_as_it_was(net_daemon: Daemon) -> None:
    d = net_daemon
    before_network = host_state(d)
    d.ok("network", "create", "churn")
    try:
        before = host_state(d)
        for i in range(RUNS):
            d.ok("run", "--rm", "--network", "churn", "-p", "127.0.0.1::80",
                 "-p", f"127.0.0.1:{19000 + i}:81/udp", "busybox", "true")
        after = host_state(d)
        for key in before:
            assert after[key] == before[key], key
    finally:
        d.ok("network", "rm", "churn")
    after_network = host_state(d)
    for key in before_network:
        assert after_network[key] == before_network[key], key
