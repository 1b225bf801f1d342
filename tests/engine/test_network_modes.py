"""Networking through sampand, as the docker CLI and docker-py see it: the network modes,
published ports reachable from the host, user networks with names, isolation, and what
is left on the host afterwards (issue 5).

Traffic goes only to loopback and to the containers these tests make.
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from sampan.network.bridge import veth_name
from tests.engine.conftest import FIXTURES, Daemon, unique

PAGE = "sampan-httpd-fixture-ok"


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def net_daemon(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A daemon of each firewall backend with the httpd fixture loaded: every test using
    it is the backends' conformance suite through the docker CLI."""
    daemon = request.getfixturevalue("daemon" if request.param == "nftables"
                                     else "iptables_daemon")
    if "httpd" not in daemon.ok("images", "--format", "{{.Repository}}"):
        daemon.ok("load", "-i", str(FIXTURES / "httpd.docker.tar"), timeout=120)
    yield daemon


@pytest.fixture
def net_client(net_daemon: Daemon) -> Iterator[object]:
    """docker-py on the daemon of the test's backend."""
    import docker

    client = docker.DockerClient(base_url=net_daemon.host, version="auto", timeout=60)
    yield client
    client.close()


def httpd_image(d: Daemon) -> str:
    return next(line for line in d.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
                .splitlines() if line.startswith("httpd"))


def inspect(d: Daemon, ref: str) -> dict:
    return json.loads(d.ok("inspect", ref))[0]


def get(url: str, timeout: float = 10) -> httpx.Response:
    """GET with retries while the server in the container comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {link["ifname"] for link in json.loads(out)}


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def firewall_rules(d: Daemon) -> str:
    """The daemon's own rules as its backend lists them: its nftables tables, or the
    lines of its SAMPAN-*-<bridge> chains in iptables-save and ip6tables-save."""
    if d.firewall == "nftables":
        return _run("nft", "list", "table", "ip", d.nft_table) + \
            _run("nft", "list", "table", "ip6", d.nft_table)
    return "".join(line + "\n" for tool in ("iptables-save", "ip6tables-save")
                   for line in _run(tool).splitlines() if f"-{d.bridge} " in line + " ")


def rule_tags(d: Daemon) -> set[str]:
    """The owner comments (``net:<bridge>``, ``ctr:<id>``) on the daemon's rules."""
    return set(re.findall(r'comment "?([a-z]+:[^"\s]+)', firewall_rules(d)))


def test_bridge_mode_default(net_daemon: Daemon) -> None:
    d = net_daemon
    out = d.ok("run", "--rm", "busybox", "sh", "-c", "ip -4 addr show eth0; ip route")
    assert "inet 172." in out or "inet 10." in out, out
    assert "default via" in out
    names = d.ok("network", "ls", "--format", "{{.Name}} {{.Driver}}").split("\n")
    assert {"bridge bridge", "host host", "none null"} <= set(names)
    assert d.bridge in host_links()


def test_none_mode_has_only_loopback(net_daemon: Daemon) -> None:
    out = net_daemon.ok("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    names = {line.split(":")[1].strip() for line in out.splitlines()}
    assert names == {"lo"}, out


def test_host_mode_sees_host_interfaces(net_daemon: Daemon) -> None:
    out = net_daemon.ok("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    inside = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    assert inside == host_links()
    hostname = net_daemon.ok("run", "--rm", "--network", "host", "busybox", "hostname")
    assert hostname.strip() == socket.gethostname()


def test_container_mode_shares_interfaces(net_daemon: Daemon) -> None:
    d = net_daemon
    d.ok("run", "-d", "--name", "netowner", "busybox", "sh", "-c",
         "while true; do echo shared | nc -l -p 7777; done")
    try:
        owner_ip = inspect(d, "netowner")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        assert owner_ip
        out = d.ok("run", "--rm", "--network", "container:netowner", "busybox", "sh", "-c",
                   "ip -4 -o addr show eth0; for i in 1 2 3 4 5 6 7 8 9 10; do "
                   "nc 127.0.0.1 7777 </dev/null && break; sleep 0.2; done")
        assert owner_ip in out and "shared" in out, out
    finally:
        d.ok("rm", "-f", "netowner")


def test_etc_files(net_daemon: Daemon) -> None:
    out = net_daemon.ok(
        "run", "--rm", "--hostname", "box1", "--add-host", "db.example:10.1.2.3",
        "--dns", "10.9.9.9", "--dns-search", "corp.example", "busybox", "sh", "-c",
        "cat /etc/hostname /etc/hosts /etc/resolv.conf; hostname")
    assert "box1\n" in out
    assert "10.1.2.3\tdb.example" in out
    assert "nameserver 10.9.9.9" in out and "search corp.example" in out
    lines = [line for line in out.splitlines() if line.endswith("\tbox1")]
    assert lines and not lines[0].startswith("127."), out


def test_publish_on_loopback_and_random_port(net_daemon: Daemon) -> None:
    d = net_daemon
    image = httpd_image(d)
    d.ok("run", "-d", "--name", "web", "-p", "127.0.0.1:18080:80", "-p", "80", image)
    try:
        assert PAGE in get("http://127.0.0.1:18080/").text
        mapping = d.ok("port", "web")
        assert "80/tcp -> 127.0.0.1:18080" in mapping
        bound = d.ok("port", "web", "80/tcp").splitlines()
        random_port = int(next(b for b in bound if b.startswith("0.0.0.0:")).split(":")[1])
        assert random_port != 18080
        assert PAGE in get(f"http://127.0.0.1:{random_port}/").text
        # the host's own (non-loopback) address reaches the random 0.0.0.0 binding
        host_ip = subprocess.run(["ip", "-4", "-o", "route", "get", "192.0.2.123"],
                                 capture_output=True, text=True).stdout.split("src ")[1].split()[0]
        assert PAGE in get(f"http://{host_ip}:{random_port}/").text
        ps = d.ok("ps", "--filter", "name=web", "--format", "{{.Ports}}")
        assert "127.0.0.1:18080->80/tcp" in ps
        # a host port that is in use is a clear error at start
        failed = d.docker("run", "--rm", "-p", "127.0.0.1:18080:80", "busybox", "true")
        assert failed.returncode != 0
        assert "port is already allocated" in failed.stderr
    finally:
        d.ok("rm", "-f", "web")
    with pytest.raises(httpx.HTTPError):
        httpx.get("http://127.0.0.1:18080/", timeout=1)
    assert "ctr:" not in firewall_rules(d)


def test_a_start_failing_in_the_network_leaves_nothing(net_daemon: Daemon) -> None:
    """A start whose network fails (a host port in use) fails as docker's does, and
    leaves nothing of the run: no runtime container, namespace, veth, cgroup or rule;
    once the port is free the same container starts."""
    d = net_daemon
    name = unique("taken")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        failed = d.docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80",
                          "busybox", "sleep", "300")
        assert failed.returncode == 125, failed.stderr
        assert "port is already allocated" in failed.stderr
    try:
        info = inspect(d, name)
        cid = info["Id"]
        assert info["State"]["Status"] == "created" and not info["State"]["Pid"]
        runtime = subprocess.run([os.path.join(os.path.dirname(sys.executable), "sampan-runtime"),
                                  "--root", os.path.join(d.exec_root, "runtime"), "list",
                                  "-q"], capture_output=True, text=True, check=True).stdout
        assert cid not in runtime.split()
        assert not os.path.exists(os.path.join(d.exec_root, "netns", cid))
        links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
        assert veth_name(cid) not in links
        parent = d.cgroup_parent.strip("/")  # (v1 hierarchies, or the unified one)
        assert not glob.glob(f"/sys/fs/cgroup/*/{parent}/*{cid}*")
        assert not glob.glob(f"/sys/fs/cgroup/{parent}/*{cid}*")
        assert "ctr:" not in firewall_rules(d)
        d.ok("start", name)
        assert inspect(d, name)["State"]["Running"]
        assert f"80/tcp -> 127.0.0.1:{port}" in d.ok("port", name)
    finally:
        d.ok("rm", "-f", name)


UDP_ECHO = ("import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0', 9999))\n"
            "while True:\n"
            "    data, peer = s.recvfrom(100)\n"
            "    s.sendto(data, peer)\n")


def test_udp_publish(net_daemon: Daemon) -> None:
    """A UDP echo server in the container's namespace (busybox's nc has no UDP) answers
    through ``-p 127.0.0.1:…/udp``."""
    d = net_daemon
    d.ok("run", "-d", "--name", "udpecho", "-p", "127.0.0.1:18081:9999/udp", "busybox",
         "sleep", "300")
    pid = inspect(d, "udpecho")["State"]["Pid"]
    server = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c",
                               UDP_ECHO])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    try:
        deadline = time.monotonic() + 10
        while True:
            sock.sendto(b"ping", ("127.0.0.1", 18081))
            try:
                data, _ = sock.recvfrom(100)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no UDP echo"
        assert data == b"ping"
        assert "9999/udp -> 127.0.0.1:18081" in d.ok("port", "udpecho")
    finally:
        sock.close()
        server.kill()
        server.wait()
        d.ok("rm", "-f", "udpecho")


def test_publish_all(net_daemon: Daemon, net_client: object) -> None:
    d = net_daemon
    d.ok("run", "-d", "--name", "pall", "-P", "--expose", "5000/udp", httpd_image(d))
    try:
        ports = inspect(d, "pall")["NetworkSettings"]["Ports"]
        assert set(ports) == {"80/tcp", "5000/udp"}
        assert all(ports[k] and int(ports[k][0]["HostPort"]) > 0 for k in ports)
        port = int(ports["80/tcp"][0]["HostPort"])
        assert PAGE in get(f"http://127.0.0.1:{port}/").text
        container = net_client.containers.get("pall")  # type: ignore[attr-defined]
        assert container.ports["80/tcp"][0]["HostPort"] == str(port)
    finally:
        d.ok("rm", "-f", "pall")


def test_sampand_in_a_network_namespace_of_its_own(tmp_path: object) -> None:
    """sampand may itself run in a network namespace (a container, a CI sandbox, the
    benchmarks): its bridge, veths and rules live there, and /sys, which still shows the
    host's interfaces, is not what it configures them through."""
    from .spawn import spawned

    ns = f"sampan-t{time.monotonic_ns() % 10**8}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
                       check=True)
        with spawned([]) as d:
            d.start(argv=["nsenter", f"--net=/run/netns/{ns}", *d.argv()])
            d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
            out = d.ok("run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
            assert " inet " in out, out
            inside = subprocess.run(["ip", "netns", "exec", ns, "ip", "-d", "link", "show",
                                     d.bridge], capture_output=True, text=True, check=True)
            assert d.bridge in inside.stdout
            assert d.bridge not in host_links()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
