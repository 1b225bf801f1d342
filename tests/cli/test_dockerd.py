"""The commands whose endpoints sampand does not serve yet (cp, commit, export, stats,
pause, update, volumes, networks, system df, login) against the real dockerd (Debian's
20.10, a private one: no bridge, no iptables), side by side with the docker CLI."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..images.dockerd import private_dockerd
from ..registry.conftest import Registry, _start, _stop
from .conftest import SAMPAN

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "images"

pytestmark = pytest.mark.peers


class Peer:
    """`sampan -H <dockerd>` and `docker -H <dockerd>`."""

    def __init__(self, docker: list[str], config: str) -> None:
        self.docker_cmd = docker
        self.host = docker[-1]
        self.env = {**os.environ, "DOCKER_CONFIG": config, "SAMPAN_NO_AUTOSTART": "1"}
        for name in ("DOCKER_HOST", "SAMPAN_HOST"):
            self.env.pop(name, None)

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SAMPAN, "-H", self.host, *args], capture_output=True,
                              text=True, input=input, env=self.env, timeout=120)

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self.run(*args, input=input)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.docker_cmd, *args], capture_output=True, text=True,
                              env=self.env, timeout=120)

    def same(self, *args: str) -> str:
        ours, theirs = self.run(*args), self.docker(*args)
        if ours.stdout != theirs.stdout:  # a relative time may have ticked over
            ours, theirs = self.run(*args), self.docker(*args)
        assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode), args
        return ours.stdout


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    work = tempfile.mkdtemp(prefix="sampan-cli-dockerd-")
    try:
        with private_dockerd(work) as docker:
            p = Peer(docker, os.path.join(work, "config"))
            assert p.docker("load", "-i", str(FIXTURES / "busybox.docker.tar")).returncode == 0
            p.ok("run", "-d", "--network", "none", "--name", "box", "busybox", "sleep", "600")
            yield p
            ids = p.docker("ps", "-aq").stdout.split()
            if ids:
                p.docker("rm", "-f", *ids)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_tables_match_docker(peer: Peer) -> None:
    for args in (["ps", "-a"], ["ps", "-s"], ["images"], ["inspect", "box"],
                 ["network", "ls"], ["network", "inspect", "host"], ["system", "df"],
                 ["history", "busybox"], ["ps", "--format", "{{.Networks}} {{.Mounts}}"]):
        peer.same(*args)


def test_exit_codes_from_runc(peer: Peer) -> None:
    denied = peer.run("run", "--rm", "--network", "none", "busybox", "/etc/passwd")
    assert denied.returncode == 126 and "permission denied" in denied.stderr
    missing = peer.run("run", "--rm", "--network", "none", "busybox", "nosuch")
    assert missing.returncode == 127


def test_cp_both_ways(peer: Peer, tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("one\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "deep.txt").write_text("deep\n")
    result = peer.run("cp", str(tmp_path / "one.txt"), "box:/tmp/")
    assert result.returncode == 0 and result.stderr.startswith("Successfully copied")
    assert peer.ok("exec", "box", "cat", "/tmp/one.txt") == "one\n"
    peer.ok("cp", str(tmp_path / "one.txt"), "box:/tmp/renamed.txt")
    assert peer.ok("exec", "box", "cat", "/tmp/renamed.txt") == "one\n"
    peer.ok("cp", str(tree), "box:/tmp/")
    assert peer.ok("exec", "box", "cat", "/tmp/tree/sub/deep.txt") == "deep\n"
    peer.ok("cp", str(tree), "box:/tmp/newname")
    assert peer.ok("exec", "box", "cat", "/tmp/newname/sub/deep.txt") == "deep\n"
    assert peer.ok("exec", "box", "stat", "-c", "%u", "/tmp/one.txt") == "0\n"
    # and back
    out = tmp_path / "back"
    out.mkdir()
    peer.ok("cp", "box:/tmp/one.txt", str(out))
    assert (out / "one.txt").read_text() == "one\n"
    peer.ok("cp", "box:/tmp/tree", str(out / "tree-copy"))
    assert (out / "tree-copy" / "sub" / "deep.txt").read_text() == "deep\n"
    peer.ok("cp", "box:/tmp/tree", str(out))
    assert (out / "tree" / "sub" / "deep.txt").read_text() == "deep\n"
    streamed = subprocess.run([SAMPAN, "-H", peer.host, "cp", "box:/etc/hostname", "-"],
                              capture_output=True, env=peer.env, timeout=60)
    with tarfile.open(fileobj=io.BytesIO(streamed.stdout)) as tar:
        assert tar.getnames() == ["hostname"]
    missing = peer.run("cp", "box:/no/such", str(out))
    assert missing.returncode == 1 and "Could not find the file" in missing.stderr


def test_commit_export_diff(peer: Peer, tmp_path: Path) -> None:
    peer.ok("exec", "box", "sh", "-c", "echo committed > /marker")
    image = peer.ok("commit", "-c", "ENV FROM_COMMIT=1", "-m", "via sampan", "box",
                    "sampan-cli/committed:1").strip()
    assert image.startswith("sha256:")
    assert peer.ok("image", "inspect", "-f", "{{.Comment}}|{{index .Config.Env 1}}",
                   "sampan-cli/committed:1") == "via sampan|FROM_COMMIT=1\n"
    peer.ok("rmi", "sampan-cli/committed:1")
    exported = subprocess.run([SAMPAN, "-H", peer.host, "export", "box"],
                              capture_output=True, env=peer.env, timeout=120)
    with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
        assert "marker" in tar.getnames()
    peer.ok("export", "-o", str(tmp_path / "box.tar"), "box")
    assert (tmp_path / "box.tar").stat().st_size == len(exported.stdout)
    # dockerd lists changes in no fixed order
    ours, theirs = peer.ok("diff", "box"), peer.docker("diff", "box").stdout
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    assert "A /marker" in ours


def test_stats_pause_update(peer: Peer) -> None:
    out = peer.ok("stats", "--no-stream")
    header, row = out.splitlines()
    assert header.split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                              "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert " box " in row and row.rstrip().endswith(" 1")
    assert header == peer.docker("stats", "--no-stream").stdout.splitlines()[0]
    assert peer.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "box") == \
        "box 1\n"
    assert peer.ok("pause", "box") == "box\n"
    assert peer.ok("inspect", "-f", "{{.State.Status}}", "box") == "paused\n"
    assert peer.ok("unpause", "box") == "box\n"
    assert peer.ok("update", "-m", "64m", "--memory-swap", "128m", "--pids-limit", "50",
                   "box") == "box\n"
    assert peer.ok("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
                   "box") == f"{64 << 20} 50\n"


def test_volumes(peer: Peer) -> None:
    assert peer.ok("volume", "create", "--label", "k=v", "cli-vol") == "cli-vol\n"
    peer.same("volume", "ls")
    peer.same("volume", "ls", "--format", "{{.Name}} {{.Label \"k\"}}")
    assert peer.ok("volume", "inspect", "-f", "{{.Driver}} {{.Labels.k}}", "cli-vol") == \
        "local v\n"
    peer.ok("run", "--rm", "--network", "none", "-v", "cli-vol:/data", "busybox", "sh", "-c",
            "echo kept > /data/f")
    assert peer.ok("run", "--rm", "--network", "none", "--mount",
                   "type=volume,src=cli-vol,dst=/v,readonly", "busybox", "cat",
                   "/v/f") == "kept\n"
    peer.same("system", "df")
    assert peer.ok("volume", "rm", "cli-vol") == "cli-vol\n"
    assert peer.run("volume", "rm", "cli-vol").returncode == 1
    assert "Total reclaimed space" in peer.ok("volume", "prune", "-f")


def test_create_options_reach_the_engine_as_docker_sends_them(peer: Peer) -> None:
    """The same `create` line through both CLIs gives the same Config and HostConfig."""
    args = ["--network", "none", "-e", "A=1", "-l", "x=y", "-w", "/tmp", "-u", "nobody",
            "--entrypoint", "sh", "-m", "32m", "--cpus", "0.5", "--pids-limit", "30",
            "--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
            "--security-opt", "no-new-privileges", "--init", "-h", "hosty",
            "--stop-signal", "SIGUSR1", "--stop-timeout", "7", "--health-cmd", "true",
            "--health-interval", "5s", "--health-retries", "2", "--ulimit", "nofile=90:100",
            "--sysctl", "net.core.somaxconn=64", "--tmpfs", "/run:size=1m",
            "--shm-size", "8m", "--add-host", "db:10.0.0.9", "--restart", "on-failure:3",
            "--dns", "10.0.0.53", "-v", "/tmp:/hosttmp:ro", "--mount",
            "type=tmpfs,dst=/scratch", "-t", "-i", "busybox", "-c", "true"]
    peer.ok("create", "--name", "by-sampan", *args)
    assert peer.docker("create", "--name", "by-docker", *args).returncode == 0
    import json

    ours = json.loads(peer.ok("inspect", "by-sampan"))[0]
    theirs = json.loads(peer.docker("inspect", "by-docker").stdout)[0]
    for part in ("Config", "HostConfig"):
        differ = {key: (ours[part].get(key), theirs[part].get(key))
                  for key in set(ours[part]) | set(theirs[part])
                  if ours[part].get(key) != theirs[part].get(key)}
        assert not differ, (part, differ)
    peer.ok("rm", "by-sampan", "by-docker")


def test_login_logout(peer: Peer, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = tmp_path_factory.mktemp("registry-run")
    registry: Registry = _start(run, tmp_path_factory.mktemp("login-registry"), auth=False)
    try:
        out = peer.ok("login", "-u", "someone", "--password-stdin", registry.host,
                      input="secret\n")
        assert out == "Login Succeeded\n"
        config = Path(peer.env["DOCKER_CONFIG"]) / "config.json"
        assert registry.host in config.read_text()
        assert peer.ok("logout", registry.host) == \
            f"Removing login credentials for {registry.host}\n"
        assert registry.host not in config.read_text()
        assert peer.ok("logout", registry.host) == f"Not logged in to {registry.host}\n"
    finally:
        _stop(run, registry)


def test_restart_of_a_removable_container_keeps_it(peer: Peer) -> None:
    """What tests/engine/test_rootfs_mount.py holds sampand to: dockerd's `restart` of a
    `--rm` container starts it again (removed only at its next exit)."""
    cid = peer.docker("run", "-d", "--rm", "--network", "none", "busybox",
                      "sleep", "60").stdout.strip()
    assert cid
    try:
        assert peer.docker("restart", "-t", "0", cid).returncode == 0
        running = peer.docker("inspect", "--format", "{{.State.Running}}", cid)
        assert running.stdout == "true\n", running.stderr
        assert peer.docker("kill", cid).returncode == 0
        assert peer.docker("wait", cid).returncode in (0, 1)  # gone as it is waited on
        for _ in range(100):
            if cid not in peer.docker("ps", "-aq", "--no-trunc").stdout:
                break
            time.sleep(0.1)
        assert cid not in peer.docker("ps", "-aq", "--no-trunc").stdout
    finally:
        peer.docker("rm", "-f", cid)
