"""A sampand for the engine tests: its own socket, data root, exec root and cgroup parent in
a temporary directory, driven by the real docker CLI, docker-py and raw HTTP.

Teardown leaves nothing behind: containers removed, sampand stopped by its pid, monitors
that outlived it killed by pid, mounts under the directory unmounted, the cgroup parent
removed, the directory deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "images"
SAMPAND = os.path.join(os.path.dirname(sys.executable), "sampand")
DOCKER = shutil.which("docker")


class DockerCLI:
    """The real docker CLI pointed at one engine (``env`` holds its DOCKER_HOST)."""

    env: dict[str, str]

    def docker(self, *args: str, input: str | None = None, timeout: float = 60,
               ) -> subprocess.CompletedProcess[str]:
        assert DOCKER is not None
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, input=input,
                              timeout=timeout, env=self.env)

    def ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        """Run a docker command that must succeed; its stdout."""
        result = self.docker(*args, input=input, timeout=timeout)
        assert result.returncode == 0, (self.env["DOCKER_HOST"], args, result.stdout,
                                        result.stderr)
        return result.stdout


class Daemon(DockerCLI):
    def __init__(self, base: str) -> None:
        self.base = base
        self.socket = os.path.join(base, "sampand.sock")
        self.host = "unix://" + self.socket
        self.data_root = os.path.join(base, "data")
        self.exec_root = os.path.join(base, "exec")
        self.cgroup_parent = f"/sampan-test-{os.getpid()}"
        # A default bridge (and so an nft table) of its own: a test daemon never touches
        # another sampand's, nor does one test daemon's shutdown remove another's.
        self.bridge = "sb" + "".join(ch for ch in os.path.basename(base) if ch.isalnum())[-10:]
        self.nft_table = "sampan_" + self.bridge
        self.firewall = "nftables"  # the firewall backend it is started with
        self.log = os.path.join(base, "sampand.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "DOCKER_HOST": self.host,
                    "DOCKER_CONFIG": os.path.join(base, "docker-config")}
        self.env.pop("DOCKER_CONTEXT", None)

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SAMPAND, "-H", self.host, "--data-root", self.data_root,
                 "--exec-root", self.exec_root, "--cgroup-parent", self.cgroup_parent,
                 "--bridge", self.bridge, *_monitor_flag()],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sampand exited: {self.log_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http().get("/_ping").status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"sampand did not answer: {self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def log_text(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()[-4000:]

    def http(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=self.socket),
                            base_url="http://sampand", timeout=timeout)



def _monitor_flag() -> list[str]:
    """SAMPAN_TEST_MONITOR=conmon runs the suite with conmon as the containers' monitor
    (sampand's own, forked warm, is the default); =sampan names the default."""
    kind = os.environ.get("SAMPAN_TEST_MONITOR")
    return ["--monitor", kind] if kind else []


def lasting_zombies(pid: int, settle: float = 5.0) -> list[int]:
    """Children of ``pid`` (sampand) that stay zombies: an exit nobody reaps. One that is
    reaped in passing (a container's monitor just exited) is given ``settle`` seconds."""
    deadline = time.monotonic() + settle
    while True:
        found = []
        for entry in os.listdir("/proc"):
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                if entry.isdigit() and fields[0] == "Z" and int(fields[1]) == pid:
                    found.append(int(entry))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _monitors_of(base: str) -> list[int]:
    """Processes (conmons, containers) whose command line names our directory."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
            if base.encode() in f.read():
                pids.append(int(entry))
    return pids


def _mounts_under(base: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted((p for p in points if p.startswith(base + "/")), key=len, reverse=True)


def _remove_cgroups(parent: str, timeout: float = 10) -> None:
    """The daemon's cgroup tree, again while a killed container's processes still die."""
    roots = ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", d)
                                  for d in os.listdir("/sys/fs/cgroup")]
    deadline = time.monotonic() + timeout
    while True:
        left = False
        for root in roots:
            top = root + parent
            if not os.path.isdir(top):
                continue
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    left = True
        if not left or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def remove_leftovers(d: Daemon) -> None:
    """What a daemon that could not stop cleanly left: its processes' monitors, mounts and
    cgroups, and its own default bridge and nft table (named for this daemon alone)."""
    for pid in _monitors_of(d.base):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for point in _mounts_under(d.base):
        subprocess.run(["umount", "-l", point], check=False)
    _remove_cgroups(d.cgroup_parent)
    if os.path.exists(f"/sys/class/net/{d.bridge}"):
        subprocess.run(["ip", "link", "del", d.bridge], check=False)
    for family in ("ip", "ip6"):
        subprocess.run(["nft", "delete", "table", family, d.nft_table], check=False,
                       capture_output=True)
    shutil.rmtree(d.base, ignore_errors=True)


@contextlib.contextmanager
def started_daemon(cgroup_parent: str | None = None) -> Iterator[Daemon]:
    """A sampand in a fresh temporary directory with busybox loaded; everything it made
    is removed afterwards (the `daemon` fixture, and the CLI tests' own)."""
    if DOCKER is None:
        pytest.fail("the docker CLI is needed for the engine tests")
    base = tempfile.mkdtemp(prefix="sampand-")
    d = Daemon(base)
    if cgroup_parent is not None:
        d.cgroup_parent = cgroup_parent
    try:
        d.start()
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield d
    finally:
        with contextlib.suppress(Exception):
            if d.proc is not None and d.proc.poll() is None:
                ids = d.docker("ps", "-aq").stdout.split()
                if ids:
                    d.docker("rm", "-f", *ids)
        d.stop()
        remove_leftovers(d)


# Package-scoped: a daemon outlives its last test only until this directory's tests are
# done, so that nothing it still runs (a restarting container a test left) changes the
# host under later packages' checks (tests/network compares the host's links).
@pytest.fixture(scope="package")
def daemon() -> Iterator[Daemon]:
    with started_daemon() as d:
        yield d


@pytest.fixture(scope="package")
def iptables_daemon() -> Iterator[Daemon]:
    """A second sampand whose firewall backend is iptables (network tests run on both)."""
    from .spawn import spawned

    with spawned(["--firewall-backend", "iptables"]) as d:
        d.firewall = "iptables"
        d.start()
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield d


@pytest.fixture
def docker_client(daemon: Daemon) -> Iterator[object]:
    import docker
    client = docker.DockerClient(base_url=daemon.host, version="auto", timeout=60)
    yield client
    client.close()


def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for ``check`` to hold, polling every 0.1 s; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def monitor_of(d: DockerCLI, name: str) -> int:
    """The pid of a running container's monitor: the parent of its init."""
    pid = int(d.ok("inspect", "--format", "{{.State.Pid}}", name).strip())
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def unique(prefix: str) -> str:
    """A container name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
