"""The sampan CLI's tests: a sampand of their own (tests.engine.conftest's Daemon, with its
own cgroup parent), driven by `sampan` and, for comparison, by the real docker CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ..engine.conftest import Daemon, started_daemon

SAMPAN = os.path.join(os.path.dirname(sys.executable), "sampan")


class Cli:
    """Runs `sampan` against one daemon (SAMPAN_HOST) with its own docker config dir."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.env = {**daemon.env, "SAMPAN_HOST": daemon.host}
        self.env.pop("DOCKER_HOST", None)

    def run(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SAMPAN, *args], capture_output=True, text=True, input=input,
                              timeout=timeout, env=self.env)

    def ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        result = self.run(*args, input=input, timeout=timeout)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout


@pytest.fixture(scope="package")
def cli_daemon() -> Iterator[Daemon]:
    with started_daemon(cgroup_parent=f"/sampan-cli-test-{os.getpid()}") as d:
        yield d


@pytest.fixture(scope="package")
def sampan(cli_daemon: Daemon) -> Cli:
    return Cli(cli_daemon)
