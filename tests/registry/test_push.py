"""Push to a real registry: new repositories, existing blobs, mounts, chunked uploads."""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sampan.images import ImageStore, import_image, load
from sampan.registry import (
    NotFound,
    ProgressEvent,
    RegistryClient,
    RegistryOptions,
    pull,
    push,
)

from ..images.conftest import busybox_rootfs_tar
from .conftest import FIXTURES, Registry


def _load(store: ImageStore, name: str) -> None:
    with open(FIXTURES / name, "rb") as f:
        load(store, f)


def _repo(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_push_new_repo_and_pull_back_by_digest(plain_registry: Registry, store: ImageStore,
                                               other_store: ImageStore,
                                               index: dict[str, Any]) -> None:
    _load(store, "busybox.docker.tar")
    target = f"{plain_registry.host}/{_repo('pushed/busybox')}:v1"
    store.tag("busybox:latest", target)
    events: list[ProgressEvent] = []
    result = push(store, target, progress=events.append)
    image = store.get(target)
    manifest = store.content.read(image.record.manifest_digest)
    assert result.size == len(manifest)
    assert result.pushed == [la.blob_digest for la in image.layers] + [image.id]
    assert events[0].status == f"The push refers to repository [{target.rsplit(':', 1)[0]}]"
    assert [e.status for e in events if e.id == image.layers[0].blob_digest[7:19]][-1] == \
        "Pushed"
    assert events[-2].status == f"v1: digest: {result.digest} size: {result.size}"
    assert events[-1].aux == {"Tag": "v1", "Digest": result.digest, "Size": result.size}
    name = target.rsplit(":", 1)[0]
    assert f"{name}@{result.digest}" in store.inspect(target)["RepoDigests"]

    back = pull(other_store, f"{name}@{result.digest}")
    assert back.digest == result.digest == back.manifest_digest
    assert back.image.id == image.id == index["busybox"]["image_id"]
    assert other_store.content.read(back.manifest_digest) == manifest
    assert [la.diff_id for la in back.image.layers] == [la.diff_id for la in image.layers]
    # the OCI manifest sampan wrote for a loaded image is one skopeo reads too
    inspected = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{target}"))
    assert inspected["Digest"] == result.digest


def _skopeo(*args: str) -> str:
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is missing (scripts/install.sh installs it)")
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def test_skopeo_reads_what_sampan_pushed(plain_registry: Registry, store: ImageStore,
                                         tmp_path: Path, index: dict[str, Any]) -> None:
    """Pushed back under a new name, the image is what skopeo inspects and copies."""
    pull(store, f"{plain_registry.host}/layers")
    target = f"{plain_registry.host}/{_repo('republished/layers')}:v2"
    store.tag(f"{plain_registry.host}/layers", target)
    result = push(store, target)
    inspected = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{target}"))
    assert inspected["Digest"] == result.digest
    assert inspected["Layers"] == [la["digest"] for la in index["layers"]["layers"]]
    config = json.loads(_skopeo("inspect", "--config", "--tls-verify=false",
                                f"docker://{target}"))
    assert config["config"]["User"] == "app"
    assert config["rootfs"]["diff_ids"] == [la["diff_id"] for la in index["layers"]["layers"]]
    copied = tmp_path / "copied"
    _skopeo("copy", "--src-tls-verify=false", f"docker://{target}", f"dir:{copied}")
    manifest = (copied / "manifest.json").read_bytes()
    image = store.get(target)
    assert manifest == store.content.read(image.record.manifest_digest)  # byte for byte
    for digest in [image.id, *(la.blob_digest for la in image.layers)]:
        blob = (copied / digest.split(":")[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == digest


def test_push_again_skips_existing_blobs(plain_registry: Registry, store: ImageStore) -> None:
    _load(store, "httpd.docker.tar")
    target = f"{plain_registry.host}/{_repo('again')}:latest"
    store.tag("httpd:latest", target)
    first = push(store, target)
    events: list[ProgressEvent] = []
    second = push(store, target, progress=events.append)
    assert second.digest == first.digest
    assert second.pushed == [] and second.mounted == []
    image = store.get(target)
    assert sorted(second.existing) == sorted([la.blob_digest for la in image.layers]
                                             + [image.id])
    layer_ids = {la.blob_digest[7:19] for la in image.layers}
    assert [e.status for e in events if e.id in layer_ids and e.status != "Preparing"] == \
        ["Layer already exists"] * len(layer_ids)


def test_cross_repository_mount(plain_registry: Registry, store: ImageStore,
                                index: dict[str, Any]) -> None:
    source = f"{plain_registry.host}/layers:latest"
    pull(store, source)
    target = f"{plain_registry.host}/{_repo('mounted')}:copy"
    store.tag(source, target)
    events: list[ProgressEvent] = []
    result = push(store, target, progress=events.append)
    assert result.pushed == []
    blobs = {la["digest"] for la in index["layers"]["layers"]} | {index["layers"]["image_id"]}
    assert {d for d, _ in result.mounted} | set(result.existing) == blobs
    assert result.digest == index["layers"]["manifest_digest"]
    assert any(e.status.startswith("Mounted from ") for e in events)
    log = plain_registry.log.read_text()
    repo = target.split("/", 1)[1].split(":")[0]
    assert re.search(rf"POST /v2/{re.escape(repo)}/blobs/uploads/\?from=\S+&mount=", log) or \
        re.search(rf"POST /v2/{re.escape(repo)}/blobs/uploads/\?mount=", log)
    assert f"PUT /v2/{repo}/blobs/uploads/" not in log  # nothing uploaded


def test_chunked_upload(plain_registry: Registry, store: ImageStore,
                        other_store: ImageStore) -> None:
    """The layers fixture from `docker save` has a 5 MiB uncompressed layer: with 1 MiB
    chunks it goes up in PATCHes; smaller blobs in one PUT."""
    _load(store, "layers.docker.tar")
    repo = _repo("chunked")
    target = f"{plain_registry.host}/{repo}:v1"
    store.tag("layers:latest", target)
    options = RegistryOptions(chunk_size=1 << 20)
    result = push(store, target, options=options)
    image = store.get(target)
    big = max(image.layers, key=lambda la: la.blob_size)
    assert big.blob_size > 5 << 20 and big.blob_digest in result.pushed
    log = plain_registry.log.read_text()
    patches = re.findall(rf'"PATCH /v2/{re.escape(repo)}/blobs/uploads/\S+ HTTP/1.1" 202', log)
    assert len(patches) >= 6
    back = pull(other_store, f"{plain_registry.host}/{repo}@{result.digest}")
    assert back.image.id == image.id
    assert [la.diff_id for la in back.image.layers] == [la.diff_id for la in image.layers]
    with RegistryClient(plain_registry.host) as client:
        assert client.blob_size(repo, big.blob_digest) == big.blob_size


def test_push_unknown_local_image(plain_registry: Registry, store: ImageStore) -> None:
    with pytest.raises(NotFound) as err:
        push(store, f"{plain_registry.host}/nothing-here:v1")
    assert str(err.value) == ("An image does not exist locally with the tag: "
                              f"{plain_registry.host}/nothing-here")


def test_imported_image_travels_with_its_uncompressed_layer(
        plain_registry: Registry, store: ImageStore, other_store: ImageStore) -> None:
    """`import` keeps the tarball as a plain tar layer: pushed and pulled back as one."""
    target = f"{plain_registry.host}/{_repo('imported')}:v1"
    image = import_image(store, io.BytesIO(busybox_rootfs_tar()), target,
                         changes=['CMD ["sh"]'])
    assert image.layers[0].media_type == "application/vnd.oci.image.layer.v1.tar"
    result = push(store, target)
    inspected = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false",
                                   f"docker://{target}"))
    assert [la["mediaType"] for la in inspected["layers"]] == [image.layers[0].media_type]
    back = pull(other_store, target)
    assert back.digest == result.digest and back.image.id == image.id
    assert back.image.layers[0].diff_id == back.image.layers[0].blob_digest


@pytest.mark.parametrize("tag", ["latest", "v2s2"], ids=["oci-index", "docker-list"])
def test_push_of_a_multi_platform_image(plain_registry: Registry, store: ImageStore,
                                        other_store: ImageStore, index: dict[str, Any],
                                        tag: str) -> None:
    """With one platform pulled, the push sends that platform's manifest (as Docker 20.10
    does); with every platform pulled, it sends them all and then the index itself."""
    source = f"{plain_registry.host}/multiarch:{tag}"
    amd64 = pull(store, source)
    target = f"{plain_registry.host}/{_repo('platforms')}:v1"
    store.tag(source, target)
    single = push(store, target)
    assert single.digest == amd64.manifest_digest
    assert single.media_type == store.get(target).record.manifest_media_type

    arm64 = pull(store, source, platform="linux/arm64")
    assert arm64.index_digest == amd64.index_digest
    events: list[ProgressEvent] = []
    both = push(store, target, progress=events.append)
    assert both.digest == amd64.index_digest  # the index, byte for byte as pulled
    assert both.media_type == ("application/vnd.oci.image.index.v1+json" if tag == "latest"
                               else "application/vnd.docker.distribution.manifest.list.v2+json")
    assert events[-2].status == f"v1: digest: {both.digest} size: {both.size}"
    assert f"{target.rsplit(':', 1)[0]}@{both.digest}" in store.inspect(target)["RepoDigests"]
    raw = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}"))
    assert [m["digest"] for m in raw["manifests"]] == [amd64.manifest_digest,
                                                       arm64.manifest_digest]
    back = pull(other_store, target, platform="linux/arm64")
    assert back.image.id == arm64.image.id and back.index_digest == both.digest
    if tag == "latest":
        assert both.digest == index["multiarch"]["manifest_digest"]
