"""Churn: many attach/publish/detach cycles leave the host exactly as it was."""

from __future__ import annotations

import glob
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from ipaddress import IPv4Network
from pathlib import Path

from sampan.network import bridge, ports
from sampan.network.firewall import Firewall as Nat
from sampan.network.ipam import Ipam, Pool
from sampan.network.ports import PortHolder
from tests.network.conftest import Bridge, Netns, rules_text

CYCLES = 50


def _netns_inodes() -> set[str]:
    found = set()
    for path in glob.glob("/proc/[0-9]*/ns/net"):
        try:
            found.add(os.readlink(path))
        except OSError:
            continue
    return found


def _host_state(nat: Nat, bridge: str) -> dict[str, object]:
    """Links, addresses, routes, bridge fdb and sampan's table; carrier states left out
    (a bridge whose last port went is NO-CARRIER where a fresh one is UNKNOWN). The ports
    of other bridges are left out too: the session's sampands (other test packages) may
    start a container of theirs meanwhile (a restart policy), and those are not ours."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    shown = json.loads(run("ip", "-j", "link", "show"))
    foreign = {link["ifname"] for link in shown if link.get("master") not in (None, bridge)}

    def ours(text: str) -> str:
        return "".join(line for line in text.splitlines(keepends=True)
                       if not foreign & set(line.replace("@", " ").split()))

    links = [
        (link["ifname"], link.get("address"), link.get("master"), link["mtu"],
         sorted(set(link["flags"]) - {"LOWER_UP", "NO-CARRIER"}))
        for link in shown if link["ifname"] not in foreign
    ]
    return {
        "links": links,
        "addresses": ours(run("ip", "-o", "addr", "show")),
        "routes": ours(run("ip", "route", "show", "table", "all").replace(" linkdown", "")),
        "bridge fdb": ours(run("bridge", "fdb", "show", "dynamic")),
        "table": rules_text(nat),
    }


def test_churn_leaves_nothing(
    make_bridge: Callable[[str, str], Bridge],
    make_netns: Callable[[], Netns],
    nat: Nat,
    tmp_path: Path,
) -> None:
    ipam = Ipam(str(tmp_path), [Pool(IPv4Network("10.234.0.0/16"), 24)])
    sub = ipam.request_subnet("churn")
    br = make_bridge("churn", str(sub.subnet))
    nat.add_network(br.name, sub.subnet)
    holder = PortHolder()
    before = _host_state(nat, br.name)
    made: set[str] = set()
    timings: dict[str, list[float]] = {"attach": [], "detach": [], "publish": [], "unpublish": []}
    for i in range(CYCLES):
        ns = make_netns()
        made.add(os.readlink(ns.path))
        owner = f"c{i}"
        address = ipam.request_address("churn", owner)
        t0 = time.perf_counter()
        bridge.attach(br.name, ns.path, "svtchurn", address, sub.gateway)
        t1 = time.perf_counter()
        bindings = holder.reserve(owner, [*ports.parse("80"), *ports.parse("127.0.0.1::53/udp")])
        nat.publish(owner, address.ip, bindings)
        t2 = time.perf_counter()
        assert nat.owners() == {owner}
        t3 = time.perf_counter()
        nat.unpublish(owner)
        holder.release(owner)
        t4 = time.perf_counter()
        bridge.detach("svtchurn")
        t5 = time.perf_counter()
        ipam.release_address("churn", owner)
        ns.stop()
        for key, spent in zip(timings, (t1 - t0, t5 - t4, t2 - t1, t4 - t3), strict=True):
            timings[key].append(spent * 1000)
    assert _host_state(nat, br.name) == before
    assert not made & _netns_inodes()
    assert ipam.subnet("churn").allocated == {}
    print(
        "\nnetwork churn, median ms: "
        + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in timings.items())
    )
