"""sampand's start-up garbage collection (ImageStore.gc): what a crash left in the image
store goes, what an image or the build cache holds stays."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from sampan.content import ContentStore
from sampan.snapshots import open_snapshotter
from tests.engine.conftest import Daemon

from .test_prune import ran


def test_a_restart_removes_crash_leftovers_and_keeps_the_build_cache(
        daemon: Daemon, tmp_path: Path) -> None:
    ran(daemon, tmp_path, "a")  # its first stage's layer is held by the build cache alone
    daemon.stop(signal.SIGKILL)
    # what a crash leaves: a verified blob nothing records, an unpack's snapshot, a
    # writer's temporary file
    content = ContentStore(os.path.join(daemon.data_root, "content"))
    with content.writer() as writer:
        writer.write(b"pulled, never recorded\n")
        orphan = writer.commit()
    snapshots = open_snapshotter(os.path.join(daemon.data_root, "snapshots"))
    try:
        snapshots.prepare("extract-cut-short")
    finally:
        snapshots.close()
    temporary = os.path.join(daemon.data_root, "content", "tmp", "cut-short")
    Path(temporary).write_bytes(b"half")
    daemon.start()
    assert not content.has(orphan)
    assert not os.path.exists(temporary)
    snapshots = open_snapshotter(os.path.join(daemon.data_root, "snapshots"))
    try:
        assert not snapshots.exists("extract-cut-short")
    finally:
        snapshots.close()
    assert "removed 1 snapshots and 1 blobs" in daemon.log_text()
    assert ran(daemon, tmp_path, "a") == 0  # the cached stage's RUN was not run again
    assert daemon.ok("run", "--rm", "--network", "none", "busybox", "echo", "ok") == "ok\n"
