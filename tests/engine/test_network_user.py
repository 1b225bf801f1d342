"""User-defined networks through sampand: create/ls/inspect/rm/prune, names and aliases
through the embedded DNS, isolation between networks, internal networks, connect and
disconnect on running containers, docker-py's view, and a clean host afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.engine.conftest import Daemon, lasting_zombies
from tests.engine.test_network_modes import (
    PAGE,
    get,
    httpd_image,
    inspect,
    net_client,
    net_daemon,
    rule_tags,
)

__all__ = ["net_client", "net_daemon"]


# The fixture's static busybox crashes in glibc's getaddrinfo (its wget, even with an
# address), so a name is looked up with nslookup (its own resolver, through
# /etc/resolv.conf) and the page fetched with nc; retried while the server comes up.
HTTP_GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {0} 80 | grep fixture-ok"
FETCH_BY_NAME = (
    "for i in 1 2 3 4 5 6 7 8 9 10; do "
    "a=$(nslookup {0} 2>/dev/null | awk '/^Address/ {{x=$NF}} END {{print x}}'); "
    "case $a in 127.0.0.11*|'') ;; *) " + HTTP_GET.format("$a") + " && break;; esac; "
    "sleep 0.3; done; ")

T = TypeVar("T")


def links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {link["ifname"] for link in json.loads(out)}


def settled(probe: Callable[[], T], expected: Callable[[T], bool], timeout: float = 5.0) -> T:
    """``probe()`` once ``expected`` holds of it (or the last one): the kernel deletes a
    stopped container's veths with its namespace, a few milliseconds after sampand drops
    it, not before the API answers."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not expected(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


@pytest.fixture
def cleanup(net_daemon: Daemon) -> Iterator[list[str]]:
    """Containers (c:name) and networks (n:name) a test made, removed at its end."""
    made: list[str] = []
    yield made
    for item in reversed(made):
        kind, _, name = item.partition(":")
        net_daemon.docker("rm" if kind == "c" else "network", *(["-f"] if kind == "c" else
                          ["rm"]), name)


def test_network_lifecycle(net_daemon: Daemon, cleanup: list[str]) -> None:
    d = net_daemon
    net_id = d.ok("network", "create", "--subnet", "10.123.5.0/24", "--gateway", "10.123.5.254",
                  "--ip-range", "10.123.5.128/25", "--label", "team=net", "-o",
                  "com.docker.network.driver.mtu=1400", "lnet").strip()
    cleanup.append("n:lnet")
    assert len(net_id) == 64
    info = json.loads(d.ok("network", "inspect", "lnet"))[0]
    assert info["Id"] == net_id and info["Driver"] == "bridge" and info["Scope"] == "local"
    assert info["IPAM"]["Config"] == [{"Subnet": "10.123.5.0/24", "Gateway": "10.123.5.254",
                                       "IPRange": "10.123.5.128/25"}]
    assert info["Labels"] == {"team": "net"}
    bridge = "sbr-" + net_id[:11]
    assert bridge in links()
    assert f"net:{bridge}" in rule_tags(d)
    assert "lnet" in d.ok("network", "ls", "--filter", "label=team=net", "--format",
                          "{{.Name}}")
    dup = d.docker("network", "create", "lnet")
    assert dup.returncode != 0 and "already exists" in dup.stderr
    d.ok("run", "-d", "--name", "lc1", "--network", "lnet", "busybox", "sleep", "300")
    cleanup.append("c:lc1")
    out = d.ok("exec", "lc1", "ip", "-o", "-4", "addr", "show", "eth0")
    assert "10.123.5.128/24" in out or "10.123.5.129/24" in out, out
    assert "mtu 1400" in d.ok("exec", "lc1", "ip", "link", "show", "eth0")
    assert "default via 10.123.5.254" in d.ok("exec", "lc1", "ip", "route")
    members = json.loads(d.ok("network", "inspect", "lnet"))[0]["Containers"]
    assert [m["Name"] for m in members.values()] == ["lc1"]
    busy = d.docker("network", "rm", "lnet")
    assert busy.returncode != 0 and "active endpoints" in busy.stderr
    predefined = d.docker("network", "rm", "bridge")
    assert predefined.returncode != 0 and "pre-defined" in predefined.stderr
    missing = d.docker("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert missing.returncode != 0 and "network nosuchnet not found" in missing.stderr
    d.ok("rm", "-f", "lc1")
    d.ok("network", "rm", "lnet")
    assert bridge not in links()
    assert f"net:{bridge}" not in rule_tags(d)


def test_dns_names_aliases_and_isolation(net_daemon: Daemon, cleanup: list[str]) -> None:
    d = net_daemon
    image = httpd_image(d)
    for net in ("front", "back"):
        d.ok("network", "create", net)
        cleanup.append(f"n:{net}")
    d.ok("run", "-d", "--name", "web1", "--network", "front", "--network-alias", "www",
         image)
    cleanup.append("c:web1")
    d.ok("run", "-d", "--name", "other", "--network", "back", image)
    cleanup.append("c:other")
    out = d.ok("run", "--rm", "--network", "front", "busybox", "sh", "-c",
               FETCH_BY_NAME.format("web1") + FETCH_BY_NAME.format("www"))
    assert out.count(PAGE) == 2, out
    resolv = d.ok("run", "--rm", "--network", "front", "busybox", "cat", "/etc/resolv.conf")
    assert "nameserver 127.0.0.11" in resolv
    # another network's container: no name, and no route to its address either
    other_ip = inspect(d, "other")["NetworkSettings"]["Networks"]["back"]["IPAddress"]
    assert PAGE in get(f"http://{other_ip}/").text  # it serves (the host reaches it)
    # (--dns 127.0.0.1: the embedded server forwards unknown names to the host's
    # loopback, where nothing answers, and not to a resolver outside)
    lookup = d.docker("run", "--rm", "--network", "front", "--dns", "127.0.0.1", "busybox",
                      "nslookup", "other", "127.0.0.11")
    assert other_ip not in lookup.stdout
    blocked = d.docker("run", "--rm", "--network", "front", "busybox", "sh", "-c",
                       HTTP_GET.format(other_ip))
    assert blocked.returncode != 0 and PAGE not in blocked.stdout
    # the default bridge has no names
    plain = d.docker("run", "--rm", "busybox", "nslookup", "web1", "127.0.0.11")
    assert plain.returncode != 0


def test_connect_disconnect_running(net_daemon: Daemon, cleanup: list[str]) -> None:
    d = net_daemon
    image = httpd_image(d)
    d.ok("network", "create", "--subnet", "10.124.0.0/24", "cnet")
    cleanup.append("n:cnet")
    d.ok("run", "-d", "--name", "cweb", image)
    cleanup.append("c:cweb")
    d.ok("run", "-d", "--name", "cclient", "--network", "cnet", "--dns", "127.0.0.1",
         "busybox", "sleep", "300")
    cleanup.append("c:cclient")
    d.ok("network", "connect", "--alias", "joined", "--ip", "10.124.0.50", "cnet", "cweb")
    nets = inspect(d, "cweb")["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", "cnet"}
    assert nets["cnet"]["IPAddress"] == "10.124.0.50" and "joined" in nets["cnet"]["Aliases"]
    assert "10.124.0.50/24" in d.ok("exec", "cweb", "ip", "-o", "-4", "addr")
    out = d.ok("exec", "cclient", "sh", "-c", FETCH_BY_NAME.format("joined"))
    assert PAGE in out
    again = d.docker("network", "connect", "cnet", "cweb")
    assert again.returncode != 0 and "already exists" in again.stderr
    d.ok("network", "disconnect", "cnet", "cweb")
    assert set(inspect(d, "cweb")["NetworkSettings"]["Networks"]) == {"bridge"}
    assert "10.124.0.50" not in d.ok("exec", "cweb", "ip", "-o", "-4", "addr")
    gone = d.docker("exec", "cclient", "nslookup", "joined", "127.0.0.11")
    assert "10.124.0.50" not in gone.stdout


def test_connect_again_and_again_keeps_names(net_daemon: Daemon, cleanup: list[str]) -> None:
    """A container already on a user network (its DNS listener is up) joins and leaves
    others over and over: each connect answers at once (it once re-bound 127.0.0.11:53 and
    lost the race with the old socket's close: 'address already in use'), and names on
    every network it is on resolve from inside."""
    d = net_daemon
    for net in ("rjA", "rjB"):
        d.ok("network", "create", net)
        cleanup.append(f"n:{net}")
    d.ok("run", "-d", "--name", "rj-peer", "--network", "rjB", "busybox", "sleep", "300")
    cleanup.append("c:rj-peer")
    d.ok("run", "-d", "--name", "rj-self", "--network", "rjA", "busybox", "sleep", "300")
    cleanup.append("c:rj-self")
    peer_ip = inspect(d, "rj-peer")["NetworkSettings"]["Networks"]["rjB"]["IPAddress"]
    for _ in range(6):
        d.ok("network", "connect", "--alias", "again", "rjB", "rj-self")
        d.ok("network", "disconnect", "rjB", "rj-self")
    d.ok("network", "connect", "rjB", "rj-self")
    found = d.ok("exec", "rj-self", "nslookup", "rj-peer", "127.0.0.11")
    assert peer_ip in found, found
    assert d.docker("exec", "rj-self", "nslookup", "rj-self", "127.0.0.11").returncode == 0


def test_internal_network_has_no_way_out(net_daemon: Daemon, cleanup: list[str]) -> None:
    d = net_daemon
    d.ok("network", "create", "--internal", "inet")
    cleanup.append("n:inet")
    out = d.ok("run", "--rm", "--network", "inet", "busybox", "ip", "route")
    assert "default" not in out and out.strip(), out
    info = json.loads(d.ok("network", "inspect", "inet"))[0]
    assert info["Internal"] is True
    # a server outside the internal network (on the default bridge) is out of reach
    d.ok("run", "-d", "--name", "outside", httpd_image(d))
    cleanup.append("c:outside")
    outside_ip = inspect(d, "outside")["NetworkSettings"]["IPAddress"]
    assert PAGE in get(f"http://{outside_ip}/").text
    blocked = d.docker("run", "--rm", "--network", "inet", "busybox", "sh", "-c",
                       HTTP_GET.format(outside_ip))
    assert blocked.returncode != 0 and PAGE not in blocked.stdout


def test_kill9_restart_keeps_running_and_cleans_dead(net_daemon: Daemon,
                                                     cleanup: list[str]) -> None:
    """sampand killed: the running container stays reachable, its address and port stay
    reserved, and a container that died meanwhile leaves no veth, rule or namespace."""
    d = net_daemon
    d.ok("network", "create", "rnet")
    cleanup.append("n:rnet")
    d.ok("run", "-d", "--name", "keeper", "--network", "rnet", "-p", "127.0.0.1:18090:80",
         httpd_image(d))
    cleanup.append("c:keeper")
    d.ok("run", "-d", "--name", "dier", "-p", "127.0.0.1:18091:80", "busybox", "sh", "-c",
         "sleep 2")
    cleanup.append("c:dier")
    keeper = inspect(d, "keeper")["NetworkSettings"]["Networks"]["rnet"]
    dier_id = inspect(d, "dier")["Id"]
    assert PAGE in get("http://127.0.0.1:18090/").text
    d.stop(signal.SIGKILL)
    time.sleep(3)  # ``dier`` exits while no daemon runs
    d.start()
    assert PAGE in get("http://127.0.0.1:18090/").text
    assert inspect(d, "keeper")["NetworkSettings"]["Networks"]["rnet"]["IPAddress"] == \
        keeper["IPAddress"]
    taken = d.docker("run", "--rm", "-p", "127.0.0.1:18090:80", "busybox", "true")
    assert "port is already allocated" in taken.stderr
    assert not any(name.startswith("sv" + dier_id[:10]) for name in settled(
        links, lambda now: not any(n.startswith("sv" + dier_id[:10]) for n in now)))
    assert f"ctr:{dier_id}" not in rule_tags(d)
    assert not os.path.exists(f"{d.exec_root}/netns/{dier_id}")
    # the address stays reserved: a new container on rnet gets another one
    out = d.ok("run", "--rm", "--network", "rnet", "busybox", "ip", "-o", "-4", "addr",
               "show", "eth0")
    assert keeper["IPAddress"] + "/" not in out
    # names still resolve on the network after the restart
    out = d.ok("run", "--rm", "--network", "rnet", "busybox", "sh", "-c",
               FETCH_BY_NAME.format("keeper"))
    assert PAGE in out


def test_prune_and_docker_py(net_daemon: Daemon, net_client: object,
                             cleanup: list[str]) -> None:
    d = net_daemon
    client = net_client
    net = client.networks.create("pynet", labels={"x": "1"})  # type: ignore[attr-defined]
    cleanup.append("n:pynet")
    c = client.containers.run("busybox", "sleep 300", detach=True,  # type: ignore[attr-defined]
                              network="pynet", name="pyc")
    cleanup.append("c:pyc")
    net.reload()
    assert [x.name for x in net.containers] == ["pyc"]
    c.reload()
    assert c.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"]
    d.ok("network", "create", "unused")
    cleanup.append("n:unused")
    pruned = d.ok("network", "prune", "-f")
    assert "unused" in pruned and "pynet" not in pruned
    assert "unused" not in d.ok("network", "ls", "--format", "{{.Name}}")


def test_nothing_left_after_rm(net_daemon: Daemon) -> None:
    """Every container and network made: no veth, rule, namespace or address is left."""
    d = net_daemon
    netns_dir = f"{d.exec_root}/netns"

    def namespaces() -> set[str]:
        return set(os.listdir(netns_dir)) if os.path.isdir(netns_dir) else set()

    def netns_mounts() -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return sorted(line.split()[4] for line in f if f"{netns_dir}/" in line)

    def allocated() -> dict[str, list[str]]:
        with open(f"{d.data_root}/network/ipam.json") as f:
            return {name: sorted(sub["allocated"])
                    for name, sub in json.load(f)["networks"].items()}

    # The daemon is shared: what other tests still run is left out of the comparison.
    before = links(), rule_tags(d), namespaces(), netns_mounts(), allocated()
    d.ok("network", "create", "gone")
    for i in range(5):
        d.ok("run", "--rm", "--network", "gone", "-p", "127.0.0.1::80", "busybox", "true")
        d.ok("run", "-d", "--name", f"g{i}", "-p", "80", "busybox", "sleep", "60")
    d.ok("rm", "-f", *[f"g{i}" for i in range(5)])
    d.ok("network", "rm", "gone")
    assert (settled(links, lambda now: now == before[0]), rule_tags(d), namespaces(),
            netns_mounts(), allocated()) == before


def test_started_again_at_once_gets_its_network(net_daemon: Daemon,
                                               cleanup: list[str]) -> None:
    """A container's veth is named after it and goes with its namespace, a little after
    it stopped: a start right away still gets its interface and address."""
    d = net_daemon
    d.ok("run", "--name", "again", "busybox", "true")
    cleanup.append("c:again")
    for _ in range(4):
        out = d.ok("start", "-a", "again")
        assert out == "", out
    d.ok("rm", "again")
    d.ok("create", "--name", "again2", "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
    cleanup.append("c:again2")
    for _ in range(4):
        assert " inet 172." in d.ok("start", "-a", "again2")


def test_ipv6_dual_stack(net_daemon: Daemon, cleanup: list[str]) -> None:
    """--ipv6 with a ULA subnet: dual-stack addresses inside and in inspect, AAAA names,
    and the host reaching a container over IPv6 through the bridge."""
    d = net_daemon
    d.ok("network", "create", "--ipv6", "--subnet", "fd00:5a:1::/64", "--subnet",
         "10.125.0.0/24", "net6")
    cleanup.append("n:net6")
    info = json.loads(d.ok("network", "inspect", "net6"))[0]
    assert info["EnableIPv6"] is True
    assert {c["Subnet"] for c in info["IPAM"]["Config"]} == {"fd00:5a:1::/64", "10.125.0.0/24"}
    d.ok("run", "-d", "--name", "web6", "--network", "net6", httpd_image(d))
    cleanup.append("c:web6")
    ep = inspect(d, "web6")["NetworkSettings"]["Networks"]["net6"]
    assert ep["GlobalIPv6Address"].startswith("fd00:5a:1::") and ep["GlobalIPv6PrefixLen"] == 64
    assert ep["IPv6Gateway"] == "fd00:5a:1::1" and ep["IPAddress"].startswith("10.125.0.")
    inside = d.ok("exec", "web6", "ip", "-6", "addr", "show", "eth0")
    assert ep["GlobalIPv6Address"] + "/64" in inside
    assert "default via fd00:5a:1::1" in d.ok("exec", "web6", "ip", "-6", "route")
    assert PAGE in get(f"http://[{ep['GlobalIPv6Address']}]/").text
    out = d.ok("run", "--rm", "--network", "net6", "busybox", "nslookup", "-type=AAAA",
               "web6")
    assert ep["GlobalIPv6Address"] in out
    hosts = d.ok("exec", "web6", "cat", "/etc/hosts")
    assert ep["GlobalIPv6Address"] in hosts
    d.ok("rm", "-f", "web6")
    d.ok("network", "rm", "net6")
    ipam = json.load(open(f"{d.data_root}/network/ipam.json"))
    assert not any(s["subnet"].startswith("fd00:5a:1") for s in ipam["networks"].values())


def test_a_start_whose_veth_cannot_be_made_leaves_nothing(net_daemon: Daemon,
                                                           cleanup: list[str]) -> None:
    """A start whose veth cannot be made (the network's bridge was deleted behind
    sampand's back) fails with the reason and leaves nothing: no container process or
    cgroup, no monitor, no address, no veth."""
    d = net_daemon
    net_id = d.ok("network", "create", "--subnet", "10.123.9.0/24", "gonenet").strip()
    cleanup.append("n:gonenet")
    subprocess.run(["ip", "link", "del", "sbr-" + net_id[:11]], check=True)
    before = links()
    name = "t-gone-" + os.urandom(3).hex()
    cleanup.append("c:" + name)
    seconds = str(600000 + int.from_bytes(os.urandom(2), "big"))  # to find its process by
    failed = d.docker("run", "-d", "--name", name, "--network", "gonenet", "busybox",
                      "sleep", seconds)
    assert failed.returncode == 125 and "does not exist" in failed.stderr, failed.stderr
    state = json.loads(d.ok("inspect", "--format", "{{json .State}}", name))
    assert (state["Status"], state["Pid"]) == ("created", 0)
    assert "does not exist" in state["Error"]
    assert d.proc is not None
    assert lasting_zombies(d.proc.pid) == []
    assert settled(links, lambda now: now <= before) <= before
    assert inspect(d, name)["NetworkSettings"]["Networks"]["gonenet"]["IPAddress"] == ""
    # the container that was created is gone, its processes and cgroups with it (and its
    # monitor was reaped, above)
    cid = inspect(d, name)["Id"]
    assert settled(lambda: _cgroups_of(d, cid), lambda found: not found) == []
    assert not [p for p in os.listdir("/proc") if _cmdline(p) == "sleep" + seconds]


def _cgroups_of(d: Daemon, cid: str) -> list[str]:
    return [path for path in (f"/sys/fs/cgroup/{h}{d.cgroup_parent}/{cid}"
                              for h in os.listdir("/sys/fs/cgroup")) if os.path.isdir(path)]


def _cmdline(pid: str) -> str:
    if not pid.isdigit():
        return ""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b"").decode(errors="replace")
    except OSError:
        return ""
