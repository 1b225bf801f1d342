"""Extra sampands for the configuration, TLS and socket-activation tests: each with its own
temporary directory (data root, exec root, socket), cgroup parent and arguments, cleaned up
as the session daemon is."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from .conftest import SAMPAND, Daemon, remove_leftovers


class Spawned(Daemon):
    """A Daemon started with chosen arguments (the layout flags are added unless the
    arguments or the config file give them)."""

    def __init__(self, base: str, args: list[str], layout: bool = True) -> None:
        super().__init__(base)
        self.cgroup_parent = f"/sampan-test-{os.getpid()}-{os.path.basename(base)}"
        self.args = args
        self.layout = layout

    def argv(self) -> list[str]:
        layout = ["-H", self.host, "--data-root", self.data_root, "--exec-root",
                  self.exec_root, "--cgroup-parent", self.cgroup_parent,
                  "--bridge", self.bridge] if self.layout else []
        return [SAMPAND, *layout, *self.args]

    def launch(self, **popen: Any) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(popen.pop("argv", None) or self.argv(), stdout=log,
                                         stderr=log, **{"stdin": subprocess.DEVNULL, **popen})

    def start(self, ready: Callable[[], bool] | None = None, **popen: Any) -> None:
        self.launch(**popen)
        assert self.proc is not None
        deadline = time.monotonic() + 30
        failures: list[str] = []
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sampand exited: {self.log_text()}")
            try:
                if ready() if ready else self.http(timeout=5).get("/_ping").status_code == 200:
                    return
            except (httpx.HTTPError, OSError) as exc:
                failures.append(type(exc).__name__)
            time.sleep(0.1)
        self.proc.send_signal(signal.SIGUSR1)  # its threads' stacks (cli/daemon.py), logged
        time.sleep(1)
        with open(self.log, errors="replace") as f:
            log = f.read()[-20000:]
        raise RuntimeError(f"sampand did not answer ({len(failures)} tries: "
                           f"{sorted(set(failures))}): {log}")


def cleanup(d: Daemon) -> None:
    with contextlib.suppress(Exception):
        if d.proc is not None and d.proc.poll() is None:
            ids = d.docker("ps", "-aq").stdout.split()
            if ids:
                d.docker("rm", "-f", *ids)
    if d.proc is not None and d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()
    remove_leftovers(d)


@contextlib.contextmanager
def spawned(args: list[str], layout: bool = True) -> Iterator[Spawned]:
    """A Spawned daemon, not yet started; cleaned up on exit."""
    d = Spawned(tempfile.mkdtemp(prefix="sampand-x-"), args, layout)
    try:
        yield d
    finally:
        cleanup(d)


@contextlib.contextmanager
def started(args: list[str]) -> Iterator[Spawned]:
    """A Spawned daemon, started with busybox loaded; cleaned up on exit."""
    from .conftest import FIXTURES

    with spawned(args) as d:
        d.start()
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield d


def run_sampand(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """sampand with arguments that must make it refuse to start."""
    return subprocess.run([SAMPAND, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
