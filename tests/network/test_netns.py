"""Named network namespaces: made without a helper process, joined, and gone on delete."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from sampan.network import netns


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def test_create_join_delete(tmp_path: Path) -> None:
    path = str(tmp_path / "ns" / "one")
    home = os.readlink("/proc/thread-self/ns/net")
    netns.create(path)
    try:
        assert os.readlink("/proc/thread-self/ns/net") == home  # this thread went home
        assert netns.exists(path) and _mounted(path)
        inside = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "link"],
                                capture_output=True, text=True, check=True).stdout
        assert [line.split(":")[1].strip() for line in inside.splitlines()] == ["lo"]
    finally:
        netns.delete(path)
    assert not netns.exists(path) and not _mounted(path) and not os.path.exists(path)
    netns.delete(path)  # absent: no error


def test_other_threads_stay_home(tmp_path: Path) -> None:
    """Making a namespace moves no other thread of the daemon, even for a moment."""
    home = os.readlink("/proc/thread-self/ns/net")
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(os.readlink("/proc/thread-self/ns/net"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(20):
            path = str(tmp_path / f"ns{i}")
            netns.create(path)
            netns.delete(path)
    finally:
        stop.set()
        watcher.join()
    assert seen == {home}
