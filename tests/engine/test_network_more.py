"""Networking through sampand, the rest of issue 5: the firewall backend in ``docker info``,
hairpin through a host address, outbound NAT and forwarding for IPv4 and IPv6 (into a
namespace standing for the outside world), ports published on IPv6's loopback, legacy
``--link``, network events, and names after ``docker rename``.

Traffic goes only to loopback, to the host's own addresses, and to the containers and
namespaces these tests make.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engine.conftest import FIXTURES, Daemon, unique
from tests.engine.test_network_modes import (
    PAGE,
    firewall_rules,
    get,
    httpd_image,
    inspect,
    net_daemon,
    rule_tags,
)
from tests.engine.test_network_user import HTTP_GET, cleanup
from tests.network.test_nat import ECHO_PEER

__all__ = ["cleanup", "net_daemon"]

@dataclass
class Uplink:
    """A namespace standing for the world outside the host, on a veth from the host, with
    no route back to any bridge: a container's connection is answered only when it was
    masqueraded to the host's address on this link. Its server answers with the address
    it saw the connection come from."""

    pid: int
    host4: str = "10.231.98.1"
    far4: str = "10.231.98.2"
    host6: str = "fd00:231:98::1"
    far6: str = "fd00:231:98::2"


@contextlib.contextmanager
def uplink() -> Iterator[Uplink]:
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    server = None
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        up = Uplink(holder.pid)
        subprocess.run(["ip", "link", "add", "svtupe", "type", "veth", "peer", "name", "up0",
                        "netns", str(holder.pid)], check=True)
        for cmd in (f"addr add {up.host4}/24 dev svtupe",
                    f"addr add {up.host6}/64 dev svtupe nodad", "link set svtupe up"):
            subprocess.run(["ip", *cmd.split()], check=True)
        inside = ["nsenter", "-t", str(holder.pid), "-n"]
        for cmd in ("link set lo up", "link set up0 up", f"addr add {up.far4}/24 dev up0",
                    f"addr add {up.far6}/64 dev up0 nodad"):
            subprocess.run([*inside, "ip", *cmd.split()], check=True)
        server = subprocess.Popen([*inside, sys.executable, "-c", ECHO_PEER])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((up.far4, 7000), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the uplink's server did not start"
                time.sleep(0.1)
        yield up
    finally:
        for proc in (server, holder):
            if proc is not None:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "link", "del", "svtupe"], capture_output=True, check=False)


def peer_seen(d: Daemon, network: str, address: str) -> str:
    """The source address the uplink saw a container's connection come from ("" if it
    never got an answer)."""
    out = d.docker("run", "--rm", "--network", network, "busybox", "sh", "-c",
                   f"nc -w 3 {address} 7000 </dev/null")
    return out.stdout.strip() if out.returncode == 0 else ""


@pytest.fixture(scope="module")
def web_daemon(daemon: Daemon) -> Daemon:
    """The session daemon with the httpd fixture (for what does not depend on the
    firewall backend)."""
    if "httpd" not in daemon.ok("images", "--format", "{{.Repository}}"):
        daemon.ok("load", "-i", str(FIXTURES / "httpd.docker.tar"), timeout=120)
    return daemon


def test_backend_in_info(net_daemon: Daemon) -> None:
    d = net_daemon
    assert d.ok("info", "--format", "{{.FirewallBackend.Driver}}").strip() == d.firewall


def test_hairpin_through_the_gateway(net_daemon: Daemon, cleanup: list[str]) -> None:
    """A container reaches a published port through a host address (its gateway), also
    the publishing container itself."""
    d = net_daemon
    name = unique("hair")
    d.ok("run", "-d", "--name", name, "-p", "80", httpd_image(d))
    cleanup.append(f"c:{name}")
    port = int(inspect(d, name)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    gateway = inspect(d, name)["NetworkSettings"]["Gateway"]
    assert PAGE in get(f"http://127.0.0.1:{port}/").text
    fetch = f"for i in 1 2 3 4 5; do {HTTP_GET.format(gateway)} && break; sleep 0.3; done"
    fetch = fetch.replace(" 80 ", f" {port} ")
    assert PAGE in d.ok("run", "--rm", "busybox", "sh", "-c", fetch)
    assert PAGE in d.ok("exec", name, "sh", "-c", fetch)


def test_outbound_nat_ipv4_and_ipv6(net_daemon: Daemon, cleanup: list[str]) -> None:
    """Masquerade and forwarding out of a dual-stack network, none out of an internal one;
    the rules go with the networks."""
    d = net_daemon
    dual, inner = unique("out6"), unique("in6")
    d.ok("network", "create", "--ipv6", "--subnet", "fd00:5a:7::/64", dual)
    cleanup.append(f"n:{dual}")
    d.ok("network", "create", "--ipv6", "--internal", "--subnet", "fd00:5a:8::/64", inner)
    cleanup.append(f"n:{inner}")
    with uplink() as up:
        assert peer_seen(d, dual, up.far4) == up.host4
        assert peer_seen(d, dual, f"{up.far6}") == up.host6
        assert peer_seen(d, inner, up.far4) == ""
        assert peer_seen(d, inner, up.far6) == ""
        assert "fd00:5a:7::/64" in firewall_rules(d)
    d.ok("network", "rm", dual, inner)
    cleanup.clear()
    assert "fd00:5a:7::/64" not in firewall_rules(d)
    assert not any(t.startswith("net:sbr-") for t in rule_tags(d))


def curl6(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-6", "-sS", "--max-time", "5", url],
                          capture_output=True, text=True, timeout=30)


def serving(d: Daemon, name: str, network: str) -> None:
    """Wait until the container's server answers on its own IPv6 address."""
    ip6 = inspect(d, name)["NetworkSettings"]["Networks"][network]["GlobalIPv6Address"]
    assert PAGE in get(f"http://[{ip6}]/").text


def host_ipv6() -> str | None:
    """A global IPv6 address of the host (its own: traffic to it stays on the host)."""
    out = subprocess.run(["ip", "-6", "-j", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            if not link["ifname"].startswith(("sb", "sv")) and "tentative" not in a:
                return str(a["local"])
    return None


def test_publish_on_ipv6(net_daemon: Daemon, cleanup: list[str]) -> None:
    """``-p [::1]:port:80`` answers ``curl -6`` on the loopback; ``-p port:80`` on a
    dual-stack network is on [::] too (loopback through the proxy, the host's own IPv6
    address through DNAT); nothing stays after the container goes."""
    d = net_daemon
    net, name = unique("pub6"), unique("web6")
    d.ok("network", "create", "--ipv6", "--subnet", "fd00:5a:9::/64", net)
    cleanup.append(f"n:{net}")
    cleanup.append(f"c:{name}")
    started = d.docker("run", "-d", "--name", name, "--network", net, "-p", "[::1]:18185:80",
                       "-p", "18186:80", httpd_image(d))
    assert started.returncode == 0, (started.stderr, d.log_text())
    serving(d, name, net)
    out = curl6("http://[::1]:18185/")
    assert PAGE in out.stdout, out.stderr
    assert PAGE in curl6("http://[::1]:18186/").stdout
    assert PAGE in get("http://127.0.0.1:18186/").text
    mine = host_ipv6()
    if mine:
        assert PAGE in curl6(f"http://[{mine}]:18186/").stdout
    ports = d.ok("port", name).splitlines()
    assert "80/tcp -> [::1]:18185" in ports and "80/tcp -> [::]:18186" in ports
    assert "80/tcp -> 0.0.0.0:18186" in ports
    taken = d.docker("run", "--rm", "-p", "[::1]:18185:80", "busybox", "true")
    assert taken.returncode != 0 and "port is already allocated" in taken.stderr
    d.ok("rm", "-f", name)
    cleanup.pop()
    assert curl6("http://[::1]:18185/").returncode != 0
    assert "ctr:" not in firewall_rules(d)


def test_ipv6_publish_survives_a_restart(web_daemon: Daemon) -> None:
    """sampand killed and started again: the loopback proxy serves again."""
    d = web_daemon
    net, name = unique("rs6"), unique("keep6")
    d.ok("network", "create", "--ipv6", "--subnet", "fd00:5a:a::/64", net)
    try:
        d.ok("run", "-d", "--name", name, "--network", net, "-p", "[::1]:18187:80",
             httpd_image(d))
        serving(d, name, net)
        assert PAGE in curl6("http://[::1]:18187/").stdout
        d.stop(signal.SIGKILL)
        d.start()
        assert PAGE in curl6("http://[::1]:18187/").stdout
    finally:
        d.docker("rm", "-f", name)
        d.docker("network", "rm", net)


def test_link_on_the_default_bridge(web_daemon: Daemon) -> None:
    d = web_daemon
    web, client = unique("lweb"), unique("lcli")
    d.ok("run", "-d", "--name", web, "-e", "SECRET=s1", "--expose", "81/udp",
         httpd_image(d))
    try:
        ip = inspect(d, web)["NetworkSettings"]["IPAddress"]
        out = d.ok("run", "--rm", "--name", client, "--link", f"{web}:db", "busybox", "sh",
                   "-c", "env; cat /etc/hosts; " + HTTP_GET.format("db"))
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        assert env["DB_PORT"] == f"tcp://{ip}:80"
        assert env["DB_PORT_80_TCP"] == f"tcp://{ip}:80"
        assert env["DB_PORT_80_TCP_ADDR"] == ip and env["DB_PORT_80_TCP_PORT"] == "80"
        assert env["DB_PORT_80_TCP_PROTO"] == "tcp"
        assert env["DB_PORT_81_UDP_ADDR"] == ip and env["DB_PORT_81_UDP_PROTO"] == "udp"
        assert env["DB_NAME"] == f"/{client}/db"
        assert env["DB_ENV_SECRET"] == "s1" and "DB_ENV_PATH" not in env
        hostname = inspect(d, web)["Config"]["Hostname"]
        assert f"{ip}\tdb {hostname} {web}" in out
        assert PAGE in out  # "db" resolves through /etc/hosts
        # the link by its own name, and the container's own variables win
        out = d.ok("run", "--rm", "--link", web, "-e", f"{web.upper().replace('-', '_')}"
                   "_NAME=mine", "busybox", "env")
        assert f"{web.upper().replace('-', '_')}_NAME=mine" in out
        missing = d.docker("run", "--rm", "--link", "nosuchctr:x", "busybox", "true")
        assert missing.returncode != 0
        assert "could not get container for nosuchctr" in missing.stderr
        d.ok("stop", "-t", "1", web)
        stopped = d.docker("run", "--rm", "--link", f"{web}:db", "busybox", "true")
        assert stopped.returncode != 0 and "non running container" in stopped.stderr
    finally:
        d.docker("rm", "-f", web)


def test_network_events(web_daemon: Daemon) -> None:
    d = web_daemon
    net, name = unique("evnet"), unique("evc")
    since = str(time.time() - 1)
    net_id = d.ok("network", "create", net).strip()
    d.ok("run", "-d", "--name", name, "--network", net, "busybox", "sleep", "300")
    cid = inspect(d, name)["Id"]
    bridge_id = json.loads(d.ok("network", "inspect", "bridge"))[0]["Id"]
    d.ok("network", "connect", "bridge", name)
    d.ok("network", "disconnect", "bridge", name)
    d.ok("rm", "-f", name)
    d.ok("network", "rm", net)
    until = str(time.time() + 1)
    out = d.ok("events", "--since", since, "--until", until, "--filter", "type=network",
               "--format", "{{json .}}")
    seen = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"])
            for e in map(json.loads, out.splitlines())]
    mine = [(a, i, attrs) for a, i, attrs in seen if i == net_id or
            attrs.get("container") == cid]
    assert [(a, i) for a, i, _ in mine] == [
        ("create", net_id), ("connect", net_id), ("connect", bridge_id),
        ("disconnect", bridge_id), ("disconnect", net_id), ("destroy", net_id)], mine
    assert mine[0][2] == {"name": net, "type": "bridge"}
    assert mine[1][2] == {"name": net, "type": "bridge", "container": cid}
    assert mine[2][2] == {"name": "bridge", "type": "bridge", "container": cid}
    by_name = d.ok("events", "--since", since, "--until", until, "--filter",
                   f"network={net}", "--format", "{{.Action}}").split()
    assert by_name == ["create", "connect", "disconnect", "destroy"]


def test_rename_updates_names_at_once(web_daemon: Daemon) -> None:
    d = web_daemon
    net, old, new, client = unique("rn"), unique("old"), unique("new"), unique("rc")
    d.ok("network", "create", net)
    try:
        d.ok("run", "-d", "--name", old, "--network", net, "busybox", "sleep", "300")
        d.ok("run", "-d", "--name", client, "--network", net, "--dns", "127.0.0.1",
             "busybox", "sleep", "300")
        ip = inspect(d, old)["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert ip in d.ok("exec", client, "nslookup", old, "127.0.0.11")
        d.ok("rename", old, new)
        assert ip in d.ok("exec", client, "nslookup", new, "127.0.0.11")
        gone = d.docker("exec", client, "nslookup", old, "127.0.0.11")
        assert ip not in gone.stdout
        short = inspect(d, new)["Id"][:12]
        assert ip in d.ok("exec", client, "nslookup", short, "127.0.0.11")
    finally:
        d.docker("rm", "-f", old, new, client)
        d.docker("network", "rm", net)


def test_iptables_where_nft_is_missing(tmp_path: Path) -> None:
    """With no ``nft`` on its PATH (and no backend asked for), sampand uses iptables:
    published ports work through its SAMPAN-* chains, which go when it stops."""
    from tests.engine.spawn import spawned

    bin_dir = tmp_path / "sbin"
    bin_dir.mkdir()
    for tool in os.listdir("/usr/sbin"):
        if tool != "nft":
            (bin_dir / tool).symlink_to(f"/usr/sbin/{tool}")
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"}
    with spawned([]) as d:
        d.firewall = "iptables"
        d.start(env=env)
        assert d.ok("info", "--format", "{{.FirewallBackend.Driver}}").strip() == "iptables"
        d.ok("load", "-i", str(FIXTURES / "httpd.docker.tar"), timeout=120)
        d.ok("run", "-d", "--name", "fallback", "-p", "127.0.0.1::80", httpd_image(d))
        port = inspect(d, "fallback")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        assert PAGE in get(f"http://127.0.0.1:{port}/").text
        assert f"SAMPAN-PUB-{d.bridge}" in firewall_rules(d)
        assert subprocess.run(["nft", "list", "table", "ip", d.nft_table],
                              capture_output=True).returncode != 0
        d.ok("rm", "-f", "fallback")
        d.stop()
        assert firewall_rules(d) == ""
