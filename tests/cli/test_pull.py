"""pull, push and the implicit pull of run, from the distribution registry on loopback:
docker's plain lines without a terminal, progress bars on one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..engine.conftest import Daemon
from ..registry.conftest import Registry, _seed, _start, _stop
from .conftest import SAMPAN, Cli
from .ptyrun import Pty


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    run = tmp_path_factory.mktemp("registry-run")
    reg = _start(run, Path(tmp_path_factory.mktemp("cli-registry")), auth=False)
    try:
        _seed(run, reg, ["busybox"])
        yield reg
    finally:
        _stop(run, reg)


def test_pull_lines_as_docker(sampan: Cli, cli_daemon: Daemon, registry: Registry) -> None:
    ref = f"{registry.host}/busybox"
    cli_daemon.ok("pull", ref, timeout=120)  # the layers stay: both pulls below see that
    cli_daemon.ok("rmi", ref)
    theirs = cli_daemon.docker("pull", ref, timeout=120)
    assert theirs.returncode == 0, theirs.stderr
    cli_daemon.ok("rmi", ref)
    ours = sampan.run("pull", ref, timeout=120)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    lines = ours.stdout.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == "latest: Pulling from busybox"
    assert f"Status: Downloaded newer image for {ref}:latest" in lines
    assert lines[-1] == f"{ref}:latest"
    again = sampan.ok("pull", "-q", ref + ":latest", timeout=120)
    assert again == f"{ref}:latest\n"
    sampan.ok("rmi", ref)
    missing = sampan.run("pull", f"{registry.host}/no/such:1", timeout=120)
    assert missing.returncode == 1 and missing.stderr.strip()


def test_pull_progress_bars_on_a_terminal(sampan: Cli, registry: Registry) -> None:
    ref = f"{registry.host}/busybox:latest"
    pty = Pty([SAMPAN, "pull", ref], sampan.env, rows=30, cols=120)
    try:
        assert pty.wait(timeout=120) == 0
    finally:
        pty.close()
        sampan.run("rmi", ref)
    text = pty.output.decode(errors="replace")
    assert "\x1b[?25l" in text  # rich's live display (cursor hidden while it draws)
    assert "Already exists" in text or "Pull complete" in text
    assert f"Status: Downloaded newer image for {ref}" in text


def test_run_pulls_a_missing_image(sampan: Cli, registry: Registry) -> None:
    ref = f"{registry.host}/busybox:latest"
    sampan.run("rmi", ref)
    result = sampan.run("run", "--rm", ref, "echo", "pulled", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pulled\n"
    assert result.stderr.startswith(f"Unable to find image '{ref}' locally\n")
    assert f"Status: Downloaded newer image for {ref}" in result.stderr
    never = sampan.run("run", "--rm", "--pull", "never", f"{registry.host}/other:1", "true")
    assert never.returncode == 125 and "No such image" in never.stderr
    sampan.ok("rmi", ref)


def test_push_and_pull_back(sampan: Cli, registry: Registry) -> None:
    ref = f"{registry.host}/sampan-cli/pushed:v1"
    sampan.ok("tag", "busybox", ref)
    out = sampan.ok("push", ref, timeout=120)
    assert out.startswith(f"The push refers to repository [{registry.host}/sampan-cli/pushed]")
    assert "v1: digest: sha256:" in out
    sampan.ok("rmi", ref)
    assert sampan.ok("pull", "-q", ref, timeout=120) == ref + "\n"
    sampan.ok("rmi", ref)
    missing = sampan.run("push", f"{registry.host}/never/tagged:1", timeout=60)
    assert missing.returncode == 1 and "does not exist locally" in missing.stderr
