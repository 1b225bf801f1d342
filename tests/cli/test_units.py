"""The CLI's small parts on their own: docker's flag syntax, run options, units, the
multiplexed stream, and what the hot path imports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sampan import humanize
from sampan.cli.client import flags, runopts
from sampan.cli.client.commands.listing import display_ports
from sampan.cli.client.commands.logs import format_event
from sampan.cli.client.stream import Demux, detach_sequence

from .conftest import SAMPAN

OPTS = [flags.Opt("d,detach"), flags.Opt("i,interactive"), flags.Opt("t,tty"),
        flags.Opt("e,env", flags.LIST), flags.Opt("p,publish", flags.LIST),
        flags.Opt("name", flags.STR), flags.Opt("rm"), flags.Opt("n,tail", flags.INT),
        flags.Opt("network,net", flags.STR)]


def test_pflag_syntax() -> None:
    p = flags.parse(OPTS, ["-itd", "-eA=1", "-e", "B=2", "-p80:80", "--name=x", "--rm=false",
                           "--net", "host", "img", "-e", "C"], interspersed=False)
    assert (p.interactive, p.tty, p.detach, p.rm) == (True, True, True, False)
    assert p.env == ["A=1", "B=2"] and p.publish == ["80:80"] and p.name == "x"
    assert p.network == "host" and p.args == ["img", "-e", "C"]
    p = flags.parse(OPTS, ["a", "-d", "b", "--", "-t"])
    assert p.detach and p.args == ["a", "b", "-t"] and not p.tty
    assert flags.parse(OPTS, ["-n=5"]).tail == 5
    assert flags.parse(OPTS, ["--help"]).help
    for bad, message in ((["--nope"], "unknown flag: --nope"),
                         (["-z"], "unknown shorthand flag: 'z' in -z"),
                         (["--name"], "flag needs an argument: --name"),
                         (["--rm=maybe"], 'invalid argument "maybe" for "--rm" flag'),
                         (["-n", "x"], 'invalid argument "x" for "-n" flag')):
        with pytest.raises(flags.UsageError, match=message):
            flags.parse(OPTS, bad)


def test_units() -> None:
    assert runopts.ram_bytes("512m", "-m") == 512 << 20
    assert runopts.ram_bytes("1.5g", "-m") == 3 << 29
    assert runopts.ram_bytes("64MB", "-m") == 64 << 20
    assert runopts.ram_bytes("1024", "-m") == 1024
    with pytest.raises(flags.UsageError):
        runopts.ram_bytes("lots", "-m")
    assert runopts.duration_ns("1m30s", "--health-interval") == 90 * 10**9
    assert runopts.duration_ns("500ms", "--health-timeout") == 5 * 10**8
    assert humanize.size(0) == "0B" and humanize.size(4261888) == "4.26MB"
    assert humanize.size(999_900) == "1e+03kB"  # go-units' %.3g, as docker prints it
    assert humanize.human_size(1_986_000) == "1.986MB"
    assert humanize.bytes_size(1536 * 1024) == "1.5MiB"
    assert humanize.duration(0.5) == "Less than a second"
    assert humanize.duration(90) == "About a minute"
    assert humanize.duration(3 * 3600) == "3 hours"
    assert humanize.duration(40 * 86400) == "5 weeks"
    assert humanize.ellipsis("abcdefghij", 5) == "abcd…"
    assert humanize.parse_time("2024-01-02T03:04:05.5Z") == 1704164645.5
    assert humanize.parse_time("2024-01-02T05:04:05+02:00") == 1704164645.0


def test_ports() -> None:
    exposed, bindings = runopts.parse_ports(["8080:80", "127.0.0.1::53/udp", "9000-9001:90-91",
                                             "443"])
    assert set(exposed) == {"80/tcp", "53/udp", "90/tcp", "91/tcp", "443/tcp"}
    assert bindings["80/tcp"] == [{"HostIp": "", "HostPort": "8080"}]
    assert bindings["53/udp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    assert bindings["91/tcp"] == [{"HostIp": "", "HostPort": "9001"}]
    assert display_ports([
        {"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080},
        {"PrivatePort": 443, "Type": "tcp"}, {"PrivatePort": 444, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"}]) == \
        "53/udp, 0.0.0.0:8080->80/tcp, 443-444/tcp"


def test_mount_and_run_body() -> None:
    assert runopts.parse_mount("type=bind,src=/a,dst=/b,readonly") == \
        {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True}
    assert runopts.parse_mount("type=tmpfs,target=/t,tmpfs-size=1m")["TmpfsOptions"] == \
        {"SizeBytes": 1 << 20}
    p = flags.parse(runopts.RUN_OPTS, [
        "--rm", "-it", "-m", "64m", "--cpus", "1.5", "--pids-limit", "20",
        "--ulimit", "nofile=100:200", "--health-cmd", "true", "--health-retries", "2",
        "--restart", "no", "--entrypoint", "", "--tmpfs", "/run:size=1m", "busybox"],
        interspersed=False)
    body = runopts.build(p, "busybox", [], detach=False)
    host = body["HostConfig"]
    assert host["Memory"] == 64 << 20 and host["NanoCpus"] == 1_500_000_000
    assert host["PidsLimit"] == 20 and host["AutoRemove"] is True
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 100, "Hard": 200}]
    assert host["Tmpfs"] == {"/run": "size=1m"}
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Retries": 2}
    assert body["Entrypoint"] == [""]
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"], body["Tty"]) == \
        (True, True, True, True)
    with pytest.raises(flags.UsageError, match="Conflicting options: --restart and --rm"):
        runopts.build(flags.parse(runopts.RUN_OPTS, ["--rm", "--restart", "always"]),
                      "busybox", [], detach=False)


def test_env_file(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "env")
    with open(path, "w") as f:
        f.write("# comment\nA=1\n\nFROM_HOST\nUNSET_ONE\n")
    os.environ["FROM_HOST"] = "yes"
    try:
        assert runopts.env_list(["B=2"], [path]) == ["A=1", "FROM_HOST=yes", "B=2"]
    finally:
        del os.environ["FROM_HOST"]


def test_demux_and_detach_keys() -> None:
    got: list[tuple[int, bytes]] = []
    demux = Demux(lambda fd, data: got.append((fd, data)))
    stream = b"\x01\0\0\0\0\0\0\x03out" + b"\x02\0\0\0\0\0\0\x03err"
    for i in range(len(stream)):  # any split of the frames
        demux.feed(stream[i:i + 1])
    assert got == [(1, b"out"), (2, b"err")]
    got.clear()
    Demux(lambda fd, data: got.append((fd, data))).feed(b"OCI runtime exec failed\n")
    assert got == [(2, b"OCI runtime exec failed\n")]
    assert detach_sequence(None) == b"\x10\x11"
    assert detach_sequence("ctrl-a,x") == b"\x01x"


def test_event_line() -> None:
    event = {"Type": "container", "Action": "start", "timeNano": 1704164645123456789,
             "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}}}
    assert format_event(event) == ("2024-01-02T03:04:05.123456789Z container start abc "
                                   "(image=busybox, name=web)")


@pytest.mark.parametrize("command", [["ps"], ["run", "--rm", "busybox", "true"],
                                     ["exec", "c", "true"], ["start", "c"]])
def test_hot_path_imports_little(command: list[str]) -> None:
    """What `sampan run/exec/ps/start` import (against no daemon: the imports are the
    same up to the first request): none of the heavy standard modules."""
    env = {**os.environ, "SAMPAN_HOST": "unix:///nonexistent/sampan.sock",
           "SAMPAN_NO_AUTOSTART": "1"}
    env.pop("SAMPAN_DATA_ROOT", None)
    env.pop("DOCKER_HOST", None)
    result = subprocess.run([sys.executable, "-X", "importtime", SAMPAN, *command],
                            capture_output=True, text=True, env=env, timeout=30)
    assert "Cannot connect" in result.stderr
    loaded = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:")}
    heavy = {"re", "json", "http.client", "socket", "enum", "typing", "argparse",
             "subprocess", "threading", "dataclasses", "rich", "httpx", "tarfile"}
    assert not heavy & loaded, heavy & loaded


def test_image_rows_as_docker() -> None:
    """A row per tag, digest-only repositories after them, <none> for dangling images."""
    from sampan.cli.client.commands.listing import image_rows

    images = [{"Id": "sha256:" + "a" * 64, "RepoTags": ["busybox:latest"],
               "RepoDigests": ["reg:5000/busybox@sha256:x", "busybox@sha256:y"]},
              {"Id": "sha256:" + "b" * 64, "RepoTags": ["<none>:<none>"],
               "RepoDigests": ["<none>@<none>"]}]
    assert [(r.Repository, r.Tag, r.Digest, r.ID) for r in image_rows(images, True, False)] \
        == [("busybox", "latest", "<none>", "a" * 12), ("reg:5000/busybox", "<none>", "", "a" * 12),
            ("<none>", "<none>", "<none>", "b" * 12)]
    assert [(r.Repository, r.Digest) for r in image_rows(images, False, True)][:2] == \
        [("busybox", "sha256:y"), ("reg:5000/busybox", "sha256:x")]
