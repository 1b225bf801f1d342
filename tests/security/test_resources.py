"""Attacks on shared resources: a fork bomb, a memory bomb, a log flood and a full
writable layer. Each must be held inside its container: the engine keeps answering, its
memory does not grow with the flood, and other containers go on running and starting."""

from __future__ import annotations

import json
import time

from .conftest import IMAGE, Engine, wait_for

PIDS_LIMIT = 64
FLOOD_BYTES = 256 * 1024 * 1024
RSS_GROWTH_LIMIT_KIB = 64 * 1024


def _state(engine: Engine, cid: str) -> dict[str, object]:
    return json.loads(engine.ok("inspect", "--format", "{{json .State}}", cid))


def test_fork_bomb_held_by_pids_limit(engine: Engine) -> None:
    """A shell that forks without end, each child living on: the container never holds
    more processes than its pids limit, the fork that would pass it fails inside (busybox
    sh then exits), and other containers start meanwhile."""
    cid = engine.ok("run", "-d", "--pids-limit", str(PIDS_LIMIT), IMAGE, "sh", "-c",
                    "while :; do (while :; do sleep 1; done) & done").strip()
    try:
        most = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            most = max(most, len(engine.host_pids(cid)))
            time.sleep(0.02)
        assert most <= PIDS_LIMIT, (engine.name, most)  # the bomb may be over already
        assert engine.ok("run", "--rm", IMAGE, "echo", "still-starting").strip() == \
            "still-starting"
        assert wait_for(lambda: "can't fork" in engine.docker("logs", cid).stderr), \
            (engine.name, engine.docker("logs", cid))
    finally:
        engine.ok("rm", "-f", cid, timeout=120)
    assert wait_for(lambda: not engine.host_pids(cid), timeout=30)


def test_memory_bomb_killed_inside_only(engine: Engine) -> None:
    daemon = engine.pid
    bystander = engine.ok("run", "-d", IMAGE, "sleep", "600").strip()
    try:
        bomb = engine.docker("run", "--name", "sampan-memory-bomb", "-m", "32m",
                             "--memory-swap", "32m", IMAGE, "tail", "/dev/zero",
                             timeout=120)
        assert bomb.returncode == 137, (engine.name, bomb)
        state = _state(engine, "sampan-memory-bomb")
        assert state["ExitCode"] == 137 and state["OOMKilled"] is True, (engine.name, state)
        assert engine.pid == daemon and engine.alive()
        assert _state(engine, bystander)["Running"] is True
        assert engine.docker("exec", bystander, "echo", "alive").stdout.strip() == "alive"
    finally:
        engine.docker("rm", "-f", "sampan-memory-bomb", bystander, timeout=120)


def test_log_flood_does_not_grow_the_engine(engine: Engine) -> None:
    line = "0123456789abcdef" * 256  # 4 KiB lines
    flood = f"yes {line} | head -c {FLOOD_BYTES}"
    engine.ok("run", "--rm", IMAGE, "true")  # the engine has served a container
    before = engine.rss_kib()
    cid = engine.ok("run", "-d", IMAGE, "sh", "-c", flood).strip()
    try:
        peak = before
        while _state(engine, cid)["Running"]:
            peak = max(peak, engine.rss_kib())
            time.sleep(0.2)
        assert _state(engine, cid)["ExitCode"] == 0
        tail = engine.ok("logs", "--tail", "3", cid).split()
        assert line in tail, (engine.name, tail[:1])
        # Reading the whole log back streams it through the engine.
        peak = max(peak, _streamed_peak(engine, ["logs", cid]))
        # So does an attached run.
        peak = max(peak, _streamed_peak(engine, ["run", "--rm", IMAGE, "sh", "-c", flood]))
    finally:
        engine.docker("rm", "-f", cid, timeout=120)
    assert peak - before < RSS_GROWTH_LIMIT_KIB, (engine.name, before, peak)


def _streamed_peak(engine: Engine, args: list[str]) -> int:
    """Run a docker command whose output goes to /dev/null; the engine's peak RSS."""
    import subprocess

    from .conftest import DOCKER

    assert DOCKER is not None
    proc = subprocess.Popen([DOCKER, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=engine.env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, engine.rss_kib())
        time.sleep(0.2)
    assert proc.wait(timeout=120) == 0, (engine.name, args, proc.stderr)
    return peak


def test_full_writable_layer_does_not_stop_others(engine: Engine) -> None:
    """The data root is a tmpfs of its own (conftest), shared by the engine's records and
    the writable layers as on a real host: a container fills it to the last byte. The
    filler sees ENOSPC and its exit is reported; the engine answers; a container running
    beside it goes on running; once the filler is removed, a container created before
    and new ones start. (Starting a container while the data root is full fails under
    dockerd too: it writes the container's hosts file there.)"""
    bystander = engine.ok("run", "-d", IMAGE, "sleep", "600").strip()
    waiting = engine.ok("create", IMAGE, "echo", "started-after").strip()
    try:
        filler = engine.docker("run", "--name", "sampan-filler", IMAGE, "sh", "-c",
                               "dd if=/dev/zero of=/fill bs=1M; echo dd-exit=$?",
                               timeout=120)
        assert "No space left on device" in filler.stdout + filler.stderr, \
            (engine.name, filler)
        assert engine.alive()
        assert _state(engine, bystander)["Running"] is True
        engine.ok("rm", "-f", "sampan-filler", timeout=120)
        started = engine.docker("start", "-a", waiting, timeout=60)
        assert started.stdout.strip() == "started-after", (engine.name, started)
        assert engine.ok("run", "--rm", IMAGE, "echo", "after").strip() == "after"
    finally:
        engine.docker("rm", "-f", "sampan-filler", waiting, bystander, timeout=120)
