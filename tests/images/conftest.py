"""Image-store fixtures: the shared fixture images (../shared/fixtures), stores in temp dirs."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sampan.images import ImageStore, load
from sampan.snapshots import mount_all, unmount_all

_KEYS = itertools.count()
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "images"


@pytest.fixture(scope="session")
def index() -> dict[str, Any]:
    with open(FIXTURES / "INDEX.json") as f:
        return {image["name"]: image for image in json.load(f)["images"]}


def load_fixture(store: ImageStore, name: str) -> list[str]:
    with open(FIXTURES / name, "rb") as f:
        return load(store, f)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "store"))
    yield s
    s.close()


@pytest.fixture(scope="module", params=["overlayfs", "native"])
def loaded(request, tmp_path_factory) -> Iterator[ImageStore]:
    """A store per snapshotter with every docker-archive fixture loaded (read-only tests)."""
    s = ImageStore(str(tmp_path_factory.mktemp("loaded")), snapshotter=request.param)
    for name in ("busybox.docker.tar", "layers.docker.tar", "httpd.docker.tar",
                 "debian.docker.tar.gz"):
        load_fixture(s, name)
    yield s
    s.close()


@contextmanager
def container_rootfs(store: ImageStore, image: str, where: Path) -> Iterator[Path]:
    """A container's root filesystem of ``image``, mounted as the engine would."""
    key = f"container-{next(_KEYS)}"
    target = where / key
    target.mkdir(parents=True)
    mount_all(store.prepare_rootfs(key, image), str(target))
    try:
        yield target
    finally:
        unmount_all(str(target))
        store.snapshots.remove(key)


def state(store: ImageStore) -> dict[str, Any]:
    """Everything a user could observe of a store, to check a failure changed nothing."""
    return {
        "refs": store.db.refs(),
        "images": [r.id for r in store.db.images()],
        "blobs": list(store.content.walk()),
        "snapshots": [(i.key, i.kind) for i in store.snapshots.walk()],
        "dirs": sorted(os.listdir(os.path.join(store.snapshots.root, "snapshots"))),
        "ingest": os.listdir(os.path.join(store.content.root, "ingest")),
        "tmp": os.listdir(os.path.join(store.content.root, "tmp")),
    }
