"""Hostile or broken registries (tests/registry/fakeregistry.py on 127.0.0.1): digest
mismatches leave nothing behind; a dropped download resumes with a Range request."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from sampan.images import ImageStore
from sampan.oci.image import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, digest_of
from sampan.registry import (
    NotFound,
    ProgressEvent,
    RegistryConnectionError,
    RegistryOptions,
    VerificationError,
    pull,
)

from ..archive.tarbuild import E, layer
from .conftest import FIXTURES, store_state
from .fakeregistry import FakeRegistry

BUSYBOX_OCI = FIXTURES / "busybox.oci"


def _blob(digest: str) -> bytes:
    return (BUSYBOX_OCI / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def busybox(index: dict[str, Any]) -> dict[str, Any]:
    """The busybox.oci image: manifest bytes, config and layer descriptors."""
    digest = index["busybox-oci"]["manifest_digest"]
    data = _blob(digest)
    manifest = json.loads(data)
    return {"digest": digest, "data": data, "config": manifest["config"],
            "layer": manifest["layers"][0]}


def _serve(fake: FakeRegistry, busybox: dict[str, Any], repo: str = "bb") -> None:
    fake.served.manifests[(repo, "latest")] = (OCI_MANIFEST, busybox["data"])
    fake.served.manifests[(repo, busybox["digest"])] = (OCI_MANIFEST, busybox["data"])
    for desc in (busybox["config"], busybox["layer"]):
        fake.served.blobs[desc["digest"]] = _blob(desc["digest"])


def _corrupt(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def test_fake_registry_serves_a_good_image(fake: FakeRegistry, store: ImageStore,
                                           busybox: dict[str, Any],
                                           index: dict[str, Any]) -> None:
    _serve(fake, busybox)
    result = pull(store, f"{fake.host}/bb")
    assert result.image.id == index["busybox-oci"]["image_id"]


def test_corrupt_layer_is_rejected_and_nothing_stored(fake: FakeRegistry, store: ImageStore,
                                                      busybox: dict[str, Any]) -> None:
    _serve(fake, busybox)
    layer = busybox["layer"]["digest"]
    fake.served.blobs[layer] = _corrupt(fake.served.blobs[layer])
    before = store_state(store)
    events: list[ProgressEvent] = []
    with pytest.raises(VerificationError) as err:
        pull(store, f"{fake.host}/bb", progress=events.append)
    assert str(err.value).startswith(f"filesystem layer verification failed for digest {layer}")
    assert store_state(store) == before  # no blob, no partial download, no image
    assert not store.content.has(layer)
    assert "Pull complete" not in {e.status for e in events}


def test_corrupt_layer_among_many_cancels_the_others(fake: FakeRegistry, store: ImageStore,
                                                     index: dict[str, Any]) -> None:
    """Eleven layers, three downloads at a time: the bad one stops the pull and the
    blobs already fetched are removed again."""
    layers = index["layers"]["layers"]
    blobs = {la["digest"]: bytes([i]) * la["compressed_size"] for i, la in enumerate(layers)}
    real = {la["digest"]: digest_of(blobs[la["digest"]]) for la in layers}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [la["diff_id"] for la in layers]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
        "digest": digest_of(config)}, "layers": [
        {"mediaType": la["media_type"], "size": la["compressed_size"],
         "digest": real[la["digest"]] if i != 7 else la["digest"]}
        for i, la in enumerate(layers)]}).encode()
    fake.served.manifests[("many", "latest")] = (DOCKER_MANIFEST, manifest)
    fake.served.blobs[digest_of(config)] = config
    for i, la in enumerate(layers):
        fake.served.blobs[real[la["digest"]] if i != 7 else la["digest"]] = blobs[la["digest"]]
    before = store_state(store)
    with pytest.raises(VerificationError, match=f"digest {layers[7]['digest']}"):
        pull(store, f"{fake.host}/many")
    assert store_state(store) == before


def test_corrupt_config(fake: FakeRegistry, store: ImageStore,
                        busybox: dict[str, Any]) -> None:
    _serve(fake, busybox)
    config = busybox["config"]["digest"]
    fake.served.blobs[config] = _corrupt(fake.served.blobs[config])
    before = store_state(store)
    with pytest.raises(VerificationError,
                       match=f"image config verification failed for digest {config}"):
        pull(store, f"{fake.host}/bb")
    assert store_state(store) == before


def test_manifest_not_matching_its_digest(fake: FakeRegistry, store: ImageStore,
                                          busybox: dict[str, Any]) -> None:
    _serve(fake, busybox)
    wanted = busybox["digest"]
    fake.served.manifests[("bb", wanted)] = (OCI_MANIFEST, busybox["data"] + b" ")
    before = store_state(store)
    with pytest.raises(VerificationError) as err:
        pull(store, f"{fake.host}/bb@{wanted}")
    assert str(err.value) == f"manifest verification failed for digest {wanted}"
    assert store_state(store) == before


def test_wrong_docker_content_digest_header(fake: FakeRegistry, store: ImageStore,
                                            busybox: dict[str, Any]) -> None:
    _serve(fake, busybox)
    fake.served.wrong_digest_header.add(("bb", "latest"))
    with pytest.raises(VerificationError, match="manifest verification failed for digest "
                                                "sha256:0000"):
        pull(store, f"{fake.host}/bb")
    assert store.db.images() == []


def test_index_entry_not_matching_its_digest(fake: FakeRegistry, store: ImageStore,
                                             busybox: dict[str, Any]) -> None:
    """An index names the platform manifest by digest: other bytes under it are refused."""
    _serve(fake, busybox)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": busybox["digest"], "size": len(busybox["data"]),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    fake.served.manifests[("bb", "multi")] = (OCI_INDEX, index)
    fake.served.manifests[("bb", busybox["digest"])] = (OCI_MANIFEST,
                                                        busybox["data"].replace(b"{", b"{ ", 1))
    before = store_state(store)
    with pytest.raises(VerificationError, match=busybox["digest"]):
        pull(store, f"{fake.host}/bb:multi")
    assert store_state(store) == before


def test_dropped_download_resumes_with_range(fake: FakeRegistry, store: ImageStore,
                                             busybox: dict[str, Any],
                                             index: dict[str, Any]) -> None:
    _serve(fake, busybox)
    layer = busybox["layer"]["digest"]
    half = busybox["layer"]["size"] // 2
    fake.served.cut_first[layer] = half
    events: list[ProgressEvent] = []
    result = pull(store, f"{fake.host}/bb", progress=events.append,
                  options=RegistryOptions(retry_delay=0.01))
    assert result.image.id == index["busybox-oci"]["image_id"]
    gets = [r for r in fake.requests("GET") if layer in r[1]]
    assert [g[2] for g in gets] == [None, f"bytes={half}-"]
    assert any(e.status.startswith("Retrying in") for e in events)
    downloading = [e for e in events if e.status == "Downloading"]
    assert downloading[-1].current == busybox["layer"]["size"]


def test_resume_in_a_later_pull(fake: FakeRegistry, store: ImageStore,
                                busybox: dict[str, Any]) -> None:
    """With no retries left the pull fails, keeps the partial data, and the next pull
    continues from there."""
    _serve(fake, busybox)
    layer = busybox["layer"]["digest"]
    cut = 300_000
    fake.served.cut_first[layer] = cut
    with pytest.raises(RegistryConnectionError) as err:
        pull(store, f"{fake.host}/bb", options=RegistryOptions(retries=0))
    assert str(err.value).startswith(f"filesystem layer {layer}: download broke off (")
    assert str(err.value).endswith("; 1 attempt); the partial data is kept: pulling again "
                                   "resumes")
    assert store.content.ingest_offset(layer) == cut
    pull(store, f"{fake.host}/bb")
    assert [r[2] for r in fake.requests("GET") if layer in r[1]] == [None, f"bytes={cut}-"]
    assert store.content.ingest_offset(layer) == 0


def _many_layers(fake: FakeRegistry, count: int) -> list[str]:
    """An image of ``count`` small gzip'd layers under many:latest; the layer digests."""
    layers = [layer(E(f"file-{i}", data=os.urandom(1000)), compress="gzip")
              for i in range(count)]
    diff_ids = [digest_of(gzip.decompress(data)) for data in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
        "digest": digest_of(config)}, "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": len(data),
         "digest": digest_of(data)} for data in layers]}).encode()
    fake.served.manifests[("many", "latest")] = (OCI_MANIFEST, manifest)
    fake.served.blobs[digest_of(config)] = config
    for data in layers:
        fake.served.blobs[digest_of(data)] = data
    return [digest_of(data) for data in layers]


@pytest.mark.parametrize("workers", [1, 3, 8])
def test_layers_download_concurrently(fake: FakeRegistry, store: ImageStore,
                                      workers: int) -> None:
    """Every blob GET is held back a while: the downloads that overlap are exactly as many
    as the pull may run at once (three by default, as dockerd)."""
    layers = _many_layers(fake, 6)
    fake.served.blob_delay = 0.3
    options = RegistryOptions(max_concurrent_downloads=workers)
    result = pull(store, f"{fake.host}/many", options=options)
    assert sorted(result.downloaded) == sorted([*layers, result.image.id])
    assert fake.served.most_blob_gets_in_flight == min(workers, 6)
    assert RegistryOptions().max_concurrent_downloads == 3


def test_manifest_pointing_at_a_missing_blob(fake: FakeRegistry, store: ImageStore,
                                             busybox: dict[str, Any]) -> None:
    _serve(fake, busybox)
    layer_digest = busybox["layer"]["digest"]
    del fake.served.blobs[layer_digest]
    before = store_state(store)
    with pytest.raises(NotFound) as err:
        pull(store, f"{fake.host}/bb")
    assert layer_digest in str(err.value) and "blob unknown" in str(err.value)
    assert store_state(store) == before
