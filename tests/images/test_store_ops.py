"""Image store operations with Docker's semantics: tag, rmi, list filters, history, prune,
crash leftovers, and failed loads that leave the store as it was."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sampan.images import (
    ImageConflict,
    ImageError,
    ImageNotFound,
    ImageStore,
    InvalidReference,
    load,
    save,
)

from .conftest import FIXTURES, load_fixture, state, tar_of


def test_names_and_ids_resolve(store: ImageStore, index: dict[str, Any]) -> None:
    load_fixture(store, "busybox.docker.tar")
    image_id = index["busybox"]["image_id"]
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox",
                "index.docker.io/library/busybox:latest", image_id, image_id[7:],
                image_id[7:19], image_id[:19]):
        assert store.resolve(ref) == image_id, ref
    with pytest.raises(ImageNotFound, match=r"No such image: busybox:1.0"):
        store.resolve("busybox:1.0")
    with pytest.raises(InvalidReference, match="must be lowercase"):
        store.resolve("BusyBox")


def test_load_messages_and_retagging(store: ImageStore, index: dict[str, Any]) -> None:
    assert load_fixture(store, "busybox.docker.tar") == ["Loaded image: busybox:latest"]
    assert load_fixture(store, "busybox.docker.tar") == ["Loaded image: busybox:latest"]
    snapshots = store.snapshots.walk()
    # httpd's archive under busybox's name: the old image loses its name, as in Docker.
    files = _fixture_files("httpd.docker.tar")
    files["manifest.json"] = files["manifest.json"].replace(b'"httpd:latest"',
                                                            b'"busybox:latest"')
    messages = load(store, io.BytesIO(tar_of(files)))
    assert messages == [
        f"The image busybox:latest already exists, renaming the old one with ID "
        f"{index['busybox']['image_id']} to empty string", "Loaded image: busybox:latest"]
    assert {i.key for i in snapshots} < {i.key for i in store.snapshots.walk()}
    dangling = store.list_images({"dangling": ["true"]})
    assert [d["Id"] for d in dangling] == [index["busybox"]["image_id"]]
    assert dangling[0]["RepoTags"] == []


def test_tag_untag_and_remove(store: ImageStore, index: dict[str, Any]) -> None:
    load_fixture(store, "busybox.docker.tar")
    load_fixture(store, "layers.docker.tar")
    busybox = index["busybox"]["image_id"]
    assert str(store.tag("busybox", "localhost:5000/bb")) == "localhost:5000/bb:latest"
    store.tag(busybox[7:19], "busybox:v2")
    with pytest.raises(ImageError, match="refusing to create a tag with a digest reference"):
        store.tag("busybox", "busybox@sha256:" + "a" * 64)
    assert sorted(store.get("busybox").repo_tags) == ["busybox:latest", "busybox:v2",
                                                       "localhost:5000/bb:latest"]
    with pytest.raises(ImageConflict, match="referenced in multiple repositories"):
        store.remove(busybox)
    assert store.remove("busybox:v2") == [{"Untagged": "busybox:v2"}]
    assert store.remove("localhost:5000/bb") == [{"Untagged": "localhost:5000/bb:latest"}]
    layer = store.get("busybox").top_layer
    # The base layer is shared with `layers`: deleting busybox keeps its snapshot.
    result = store.remove("busybox")
    assert result == [{"Untagged": "busybox:latest"}, {"Deleted": busybox}]
    assert store.snapshots.exists(layer)
    assert not store.content.has(busybox)
    before = len(store.snapshots.walk())
    removed = store.remove("layers")
    assert len([r for r in removed if "Deleted" in r]) == 1 + 11
    assert store.snapshots.walk() == [] and before == 11
    assert list(store.content.walk()) == []


def test_images_in_use_need_force(store: ImageStore, index: dict[str, Any]) -> None:
    load_fixture(store, "busybox.docker.tar")
    store.pin("busybox", "container-1")
    with pytest.raises(ImageConflict, match="container container-1 is using its referenced"):
        store.remove("busybox")
    with pytest.raises(ImageConflict, match="being used by container container-1"):
        store.remove(index["busybox"]["image_id"])
    assert store.remove("busybox", force=True) == [{"Untagged": "busybox:latest"}]
    image_id = index["busybox"]["image_id"]
    assert store.get(image_id).repo_tags == []  # kept, dangling, for its container
    assert store.prune() == []
    store.unpin(image_id, "container-1")
    assert store.prune()[0] == {"Deleted": image_id}


def test_list_filters_and_history(store: ImageStore, index: dict[str, Any]) -> None:
    load_fixture(store, "busybox.docker.tar")
    load_fixture(store, "layers.docker.tar")
    store.tag("layers", "example.com/team/layers:v1")
    ids = lambda f: [i["Id"] for i in store.list_images(f)]  # noqa: E731
    assert ids({"reference": ["busy*"]}) == [index["busybox"]["image_id"]]
    assert store.list_images({"reference": ["example.com/*/*:v1"]})[0]["RepoTags"] == \
        ["example.com/team/layers:v1"]
    assert store.list_images({"reference": ["layers"]})[0]["RepoTags"] == ["layers:latest"]
    assert ids({"label": ["fixture.unicode"]}) == [index["layers"]["image_id"]]
    assert ids({"label": ["fixture.label with spaces=value with spaces"]}) == \
        [index["layers"]["image_id"]]
    assert ids({"dangling": ["true"]}) == []
    with pytest.raises(ImageError, match="invalid filter 'colour'"):
        store.list_images({"colour": ["red"]})
    history = store.history("layers")
    assert history[0]["Id"] == index["layers"]["image_id"]
    assert history[0]["Tags"] == ["layers:latest", "example.com/team/layers:v1"]
    assert all(h["Id"] == "<missing>" for h in history[1:])
    assert sum(1 for h in history if h["Size"]) == 10  # the WORKDIR layer is just a directory
    sizes = [h["Size"] for h in history]
    assert sum(sizes) == store.get("layers").record.size
    assert history[-1]["CreatedBy"].startswith("make-fixtures.sh: busybox-static")


def test_gc_removes_crash_leftovers(store: ImageStore) -> None:
    load_fixture(store, "busybox.docker.tar")
    before = state(store)
    store.snapshots.prepare("extract-deadbeef-sha256:" + "1" * 64)
    store.snapshots.prepare("extract-x")
    store.snapshots.commit("extract-x", "sha256:" + "2" * 64)
    stray = store.content.put(b"a blob no image records")
    open(os.path.join(store.content.root, "tmp", "half-written"), "w").close()
    os.makedirs(os.path.join(store.snapshots.root, "snapshots", "0123456789ab", "fs"))
    removed = store.gc()
    assert stray in removed["blobs"] and len(removed["snapshots"]) == 3
    assert state(store) == before


def _fixture_files(name: str) -> dict[str, bytes]:
    with tarfile.open(FIXTURES / name) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_failed_loads_leave_the_store_unchanged(store: ImageStore, tmp_path: Path) -> None:
    load_fixture(store, "busybox.docker.tar")
    before = state(store)
    files = _fixture_files("layers.docker.tar")
    manifest = json.loads(files["manifest.json"])
    layers = manifest[0]["Layers"]
    # a layer that is not the one the config names
    swapped = dict(files)
    swapped[layers[5]] = files[layers[6]]
    with pytest.raises(ImageError, match=r"layer 5 .*diff ID sha256:6e44908b.*the image "
                                         r"config says sha256:2f77383e"):
        load(store, io.BytesIO(tar_of(swapped)))
    assert state(store) == before
    # a manifest naming a layer the archive lacks
    missing = dict(files)
    del missing[layers[3]]
    with pytest.raises(ImageError, match=f"layer '{layers[3]}' is not in the archive"):
        load(store, io.BytesIO(tar_of(missing)))
    assert state(store) == before
    # a layer that tries to escape
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    hostile = dict(files)
    hostile[layers[1]] = evil.getvalue()
    with pytest.raises(ImageError, match=r"layer 1 .*'../../escaped': path leads outside"):
        load(store, io.BytesIO(tar_of(hostile)))
    assert state(store) == before
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()
    # a truncated gzip'd archive
    with open(FIXTURES / "debian.docker.tar.gz", "rb") as f:
        head = f.read(5_000_000)
    with pytest.raises(ImageError, match="truncated gzip stream"):
        load(store, io.BytesIO(head))
    assert state(store) == before
    with pytest.raises(ImageError, match=r"no manifest.json"):
        load(store, io.BytesIO(tar_of({"hello": b"world"})))
    assert state(store) == before


def test_save_then_load_round_trip(store: ImageStore, index: dict[str, Any],
                                   tmp_path: Path) -> None:
    load_fixture(store, "layers.docker.tar")
    load_fixture(store, "busybox.docker.tar")
    out = io.BytesIO()
    save(store, ["layers", "busybox:latest"], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        names = tar.getnames()
    assert [m["RepoTags"] for m in manifest] == [["layers:latest"], ["busybox:latest"]]
    assert len(manifest[0]["Layers"]) == 11
    assert manifest[1]["Layers"] == manifest[0]["Layers"][:1]  # shared layer written once
    assert names.count(manifest[0]["Layers"][0]) == 1
    other = ImageStore(str(tmp_path / "other"), snapshotter="native")
    try:
        assert load(other, io.BytesIO(out.getvalue())) == ["Loaded image: layers:latest",
                                                           "Loaded image: busybox:latest"]
        assert other.inspect("layers")["RootFS"] == store.inspect("layers")["RootFS"]
        assert other.get("layers").id == index["layers"]["image_id"]
    finally:
        other.close()


def test_load_of_an_ocitar_of(store: ImageStore, index: dict[str, Any]) -> None:
    """Docker 25+ and `skopeo copy oci-archive:` write an OCI layout as a tar."""
    layout = FIXTURES / "busybox.oci"
    files = {str(p.relative_to(layout)): p.read_bytes() for p in layout.rglob("*")
             if p.is_file()}
    assert load(store, io.BytesIO(tar_of(files))) == \
        [f"Loaded image ID: {index['busybox-oci']['image_id']}"]
    files["index.json"] = files["index.json"].replace(
        b'"org.opencontainers.image.ref.name":"latest"',
        b'"io.containerd.image.name":"docker.io/library/bb:oci",'
        b'"org.opencontainers.image.ref.name":"oci"')
    assert load(store, io.BytesIO(tar_of(files))) == ["Loaded image: bb:oci"]
    blob = "blobs/sha256/" + index["busybox-oci"]["image_id"][7:]
    files[blob] = files[blob].replace(b"PATH", b"HTAP")
    with pytest.raises(ImageError, match=r"config blob sha256:ea4022f6.*: the archive's copy "
                                         r"hashes to sha256:"):
        load(store, io.BytesIO(tar_of(files)))
