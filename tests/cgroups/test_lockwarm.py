"""The engine's cgroup lock warmer (cgroups/lockwarm.py): what it writes to, that concurrent
starts share one thread, and that it stops when no start is under way."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sampan.cgroups.lockwarm import LockWarmer, own_procs_file


def _warm_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sampan-cgroup-lock"]


def test_own_procs_file_lists_this_process() -> None:
    """The file a move into one's own cgroup goes to: here the hybrid host's cgroup2 mount
    (tests/vm checks a pure v2 host); it lists us, so writing "0" moves us nowhere."""
    path = own_procs_file()
    assert path is not None and path.endswith("/cgroup.procs")
    assert str(os.getpid()) in Path(path).read_text().split()


def test_held_writes_until_released_and_shares_one_thread(tmp_path: Path) -> None:
    # A plain file stands for cgroup.procs: the test sees each move's "0" without moving.
    procs = tmp_path / "cgroup.procs"
    procs.touch()
    warmer = LockWarmer(str(procs))
    before = Path("/proc/self/cgroup").read_text()
    with warmer.held():
        with warmer.held():  # a second start meanwhile
            time.sleep(0.05)
            assert len(_warm_threads()) == 1
        time.sleep(0.02)
        assert len(_warm_threads()) == 1  # still one start under way
        written = procs.read_text()
    assert written and set(written) == {"0"}
    for thread in _warm_threads():
        thread.join(timeout=2)
    assert not _warm_threads()
    after = procs.read_text()
    time.sleep(0.02)
    assert procs.read_text() == after  # nothing written once no start is under way
    assert Path("/proc/self/cgroup").read_text() == before
    procs.write_text("")
    with warmer.held():  # and it starts again for the next start
        time.sleep(0.02)
    assert procs.read_text().startswith("0")


def test_a_file_it_may_not_write_ends_the_thread_quietly(tmp_path: Path) -> None:
    warmer = LockWarmer(str(tmp_path / "missing" / "cgroup.procs"))
    with warmer.held():
        time.sleep(0.01)
    for thread in _warm_threads():
        thread.join(timeout=2)
    assert not _warm_threads()
