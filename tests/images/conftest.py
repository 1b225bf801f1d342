"""Image-store fixtures: the shared fixture images (../shared/fixtures), stores in temp dirs."""

from __future__ import annotations

import io
import itertools
import json
import os
import tarfile
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


def busybox_rootfs_tar() -> bytes:
    """The busybox fixture's root filesystem as a plain tarball (what `docker export` of a
    busybox container, or a debootstrap tar, would be)."""
    with tarfile.open(FIXTURES / "busybox.docker.tar") as archive:
        layer = next(m for m in archive if m.name.endswith("layer.tar"))
        data = archive.extractfile(layer)
        assert data is not None
        return data.read()


def tar_of(files: dict[str, bytes]) -> bytes:
    """A tar holding ``files`` (name → content): a hand-made image archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


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
