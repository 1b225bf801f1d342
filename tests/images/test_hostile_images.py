"""Hostile images through the store (issue check 3): every layer that tries to write outside
its snapshot, alone or across layers, is refused with an error naming the layer and the
entry; nothing is written outside and the store is as it was."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from sampan.images import ImageError, ImageStore, load

from ..archive.hostile import HOSTILE, hostile_layer
from ..archive.tarbuild import E, layer
from .conftest import load_fixture, state, tar_of

BASE = layer(E("etc", "dir"), E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"))


def image_archive(layers: list[bytes], tag: str = "hostile:latest") -> bytes:
    """A docker-archive (`docker save` format) of an image made of ``layers``."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(d).hexdigest()
                                       for d in layers]}}).encode()
    files = {"config.json": config}
    for i, data in enumerate(layers):
        files[f"l{i}/layer.tar"] = data
    files["manifest.json"] = json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                          "Layers": [f"l{i}/layer.tar"
                                                     for i in range(len(layers))]}]).encode()
    return tar_of(files)


def _outside(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep")
    return outside, {p.name: p.stat().st_mtime for p in outside.iterdir()}


@pytest.fixture(params=["overlayfs", "native"])
def any_store(request, tmp_path: Path):
    store = ImageStore(str(tmp_path / "store"), snapshotter=request.param)
    load_fixture(store, "busybox.docker.tar")  # something the failures must not disturb
    yield store
    store.close()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused(any_store: ImageStore, tmp_path: Path, case: str) -> None:
    entries, _, message = HOSTILE[case]
    outside, before_outside = _outside(tmp_path)
    shadow = os.stat("/etc/shadow")
    before = state(any_store)
    archive = image_archive([BASE, hostile_layer(entries, outside)])
    with pytest.raises(ImageError) as err:
        load(any_store, io.BytesIO(archive))
    assert str(err.value).startswith("layer 1 (sha256:")
    assert message in str(err.value) and "layer entry" in str(err.value)
    assert state(any_store) == before
    assert {p.name: p.stat().st_mtime for p in outside.iterdir()} == before_outside
    assert not (tmp_path / "escaped").exists() and not Path("/etc/evil").exists()
    after = os.stat("/etc/shadow")
    assert (after.st_nlink, after.st_mtime_ns) == (shadow.st_nlink, shadow.st_mtime_ns)


def test_symlink_in_a_lower_layer_then_a_file_below_it(any_store: ImageStore,
                                                       tmp_path: Path) -> None:
    """Each layer alone is harmless: the symlink comes in layer 1, the file in layer 2."""
    outside, before_outside = _outside(tmp_path)
    before = state(any_store)
    archive = image_archive([BASE, layer(E("out", "symlink", link=str(outside))),
                             layer(E("out/evil", data=b"x"))])
    with pytest.raises(ImageError, match=r"layer 2 .*'out/evil': parent 'out' is a symlink"):
        load(any_store, io.BytesIO(archive))
    assert state(any_store) == before
    assert {p.name: p.stat().st_mtime for p in outside.iterdir()} == before_outside


def test_hardlink_to_a_lower_layer_symlink_stays_inside(any_store: ImageStore,
                                                        tmp_path: Path) -> None:
    """A hardlink to a symlink links the symlink itself, never what it points at."""
    archive = image_archive([BASE, layer(E("shadow-link", "symlink", link="/etc/shadow")),
                             layer(E("hard", "hardlink", link="shadow-link"))], "linked:v1")
    shadow = os.stat("/etc/shadow")
    load(any_store, io.BytesIO(archive))
    assert os.stat("/etc/shadow").st_nlink == shadow.st_nlink
    top = any_store.get("linked:v1").layers[-1].chain_id
    hard = Path(any_store.snapshots.fs(any_store.snapshots.stat(top))) / "hard"
    assert os.readlink(hard) == "/etc/shadow"
