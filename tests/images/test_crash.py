"""A store whose user is killed (SIGKILL) at random moments of loads, removals and prunes is
consistent afterwards: the databases are intact, every recorded image has its blobs and
its unpacked layers, the reference counts are right, and ``gc`` removes exactly the
leftovers, so that the next load works."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sampan.images import ImageStore

from .conftest import FIXTURES, container_rootfs, load_fixture

# The victim: loads two images, removes them again, prunes, round after round.
_VICTIM = """
import sys
from sampan.images import ImageStore, load
store = ImageStore(sys.argv[1], snapshotter=sys.argv[2])
print("ready", flush=True)
while True:
    for name in ("layers.docker.tar", "httpd.docker.tar"):
        with open(f"{sys.argv[3]}/{name}", "rb") as f:
            load(store, f)
    store.remove("httpd")
    store.tag("layers", "layers:again")
    store.remove("layers")
    store.remove("layers:again")
    store.prune()
"""


def _integrity(path: str) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def check_consistent(store: ImageStore) -> None:
    """Every invariant the store promises, read from the outside."""
    assert _integrity(store.db.path) == "ok"
    assert _integrity(os.path.join(store.snapshots.root, "metadata.db")) == "ok"
    chains: dict[str, int] = {}
    for record in store.db.images():
        image = store.get(record.id)
        for digest in (record.manifest_digest, record.id,
                       *(la.blob_digest for la in image.layers)):
            assert store.content.has(digest), (record.id, digest)
        for layer in image.layers:
            info = store.snapshots.stat(layer.chain_id)
            assert info.kind == "committed" and os.path.isdir(store.snapshots.fs(info))
            chains[layer.chain_id] = chains.get(layer.chain_id, 0) + 1
        store.inspect(record.id)
    rows = store.db.query("SELECT chain_id, refcount FROM layers")
    assert {r["chain_id"]: r["refcount"] for r in rows} == chains
    for name, image_id, _ in store.db.refs():
        assert store.db.image(image_id) is not None, name
    known = {i.directory for i in store.snapshots.walk()}
    on_disk = {str(p) for p in Path(store.snapshots.root, "snapshots").iterdir()}
    assert on_disk == known  # after gc: no orphan directory
    assert {d for d, _ in store.content.walk()} <= store.db.blobs()
    assert os.listdir(os.path.join(store.content.root, "tmp")) == []


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_killed_at_random_moments(tmp_path: Path, snapshotter: str) -> None:
    root = str(tmp_path / "store")
    rng = random.Random(20261130)
    interrupted = 0
    for _ in range(8):
        victim = subprocess.Popen([sys.executable, "-c", _VICTIM, root, snapshotter,
                                   str(FIXTURES)], stdout=subprocess.PIPE,
                                  start_new_session=True)
        try:
            assert victim.stdout is not None and victim.stdout.readline() == b"ready\n"
            with contextlib.suppress(subprocess.TimeoutExpired):
                victim.wait(rng.uniform(0.05, 2.5))
            assert victim.poll() is None, "the victim died on its own"
        finally:
            os.killpg(victim.pid, signal.SIGKILL)  # cp of the native snapshotter too
            victim.wait()
            assert victim.stdout is not None
            victim.stdout.close()
        store = ImageStore(root, snapshotter=snapshotter)
        try:
            removed = store.gc()
            interrupted += bool(removed["snapshots"] or removed["blobs"])
            check_consistent(store)
        finally:
            store.close()
    assert interrupted > 0  # some kills did land in the middle of an operation
    store = ImageStore(root, snapshotter=snapshotter)
    try:
        load_fixture(store, "layers.docker.tar")
        check_consistent(store)
        with container_rootfs(store, "layers", tmp_path) as rootfs:
            assert (rootfs / "fixture/whiteout/kept.txt").read_text() == "kept\n"
    finally:
        store.close()
