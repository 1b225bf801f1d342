"""Push to a real registry: new repositories, existing blobs, mounts, chunked uploads."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from typing import Any

import pytest

from sampan.images import ImageStore, load
from sampan.registry import (
    NotFound,
    ProgressEvent,
    RegistryClient,
    RegistryOptions,
    pull,
    push,
)

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

    if shutil.which("skopeo"):  # another client reads what sampan pushed
        out = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                              f"docker://{target}"], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        assert json.loads(out)["Digest"] == result.digest


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
