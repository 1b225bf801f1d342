"""Pull from a real distribution registry (plain HTTP on loopback) seeded with the fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sampan.images import ImageStore
from sampan.registry import (
    ManifestUnknown,
    ProgressEvent,
    RegistryClient,
    RegistryConnectionError,
    UnsupportedManifest,
    pull,
)

from .conftest import Registry, store_state

SINGLE = [("busybox", "busybox:latest"), ("layers", "layers:latest"),
          ("httpd", "httpd:latest"), ("busybox-oci", "busybox:oci"),
          ("busybox-zstd", "busybox:zstd")]


def _top_dir(store: ImageStore, ref: str) -> Path:
    data = store.inspect(ref)["GraphDriver"]["Data"]
    return Path(data.get("UpperDir") or data["Dir"])


@pytest.mark.parametrize(("name", "tag"), SINGLE, ids=[n for n, _ in SINGLE])
def test_pull_fixture(plain_registry: Registry, store: ImageStore, index: dict[str, Any],
                      name: str, tag: str) -> None:
    expected = index[name]
    ref = f"{plain_registry.host}/{tag}"
    result = pull(store, ref)
    assert result.digest == expected["manifest_digest"]
    assert result.manifest_digest == expected["manifest_digest"]
    assert result.index_digest is None
    assert result.image.id == expected["image_id"]
    assert not result.up_to_date
    assert [la.diff_id for la in result.image.layers] == \
        [la["diff_id"] for la in expected["layers"]]
    assert [la.blob_digest for la in result.image.layers] == \
        [la["digest"] for la in expected["layers"]]
    for layer in expected["layers"]:
        assert store.content.has(layer["digest"])
        store.content.verify(layer["digest"])
    assert store.content.read(result.manifest_digest)  # kept byte for byte
    info = store.inspect(ref)
    assert info["RepoTags"] == [ref]
    assert info["RepoDigests"] == [f"{plain_registry.host}/{tag.split(':')[0]}@"
                                   f"{expected['manifest_digest']}"]
    assert result.status == f"Status: Downloaded newer image for {ref}"


def test_pulled_layers_fixture_content(plain_registry: Registry, store: ImageStore) -> None:
    """The unpacked layers keep what the layers fixture is about (spot checks)."""
    pull(store, f"{plain_registry.host}/layers")
    image = store.get(f"{plain_registry.host}/layers")
    dirs = [Path(store.snapshots.fs(store.snapshots.stat(la.chain_id)))
            for la in image.layers]
    caps = next(d / "fixture/caps/net-caps" for d in dirs
                if (d / "fixture/caps/net-caps").exists())
    assert os.getxattr(caps, "security.capability").hex() == \
        "0100000200240000000000000000000000000000"
    setuid = next(d / "fixture/modes/setuid-file" for d in dirs
                  if (d / "fixture/modes/setuid-file").exists())
    assert oct(setuid.stat().st_mode & 0o7777) == "0o4755"


@pytest.mark.parametrize("tag", ["latest", "v2s2"], ids=["oci-index", "docker-list"])
def test_multiarch_default_platform_is_amd64(plain_registry: Registry, store: ImageStore,
                                             index: dict[str, Any], tag: str) -> None:
    amd64 = index["multiarch"]["manifests"][0]
    assert amd64["platform"] == "linux/amd64"
    result = pull(store, f"{plain_registry.host}/multiarch:{tag}")
    assert result.index_digest == result.digest
    if tag == "latest":
        assert result.digest == index["multiarch"]["manifest_digest"]
        assert result.manifest_digest == amd64["manifest_digest"]
        assert result.image.id == amd64["image_id"]
    assert result.image.config.architecture == "amd64"
    assert [la.diff_id for la in result.image.layers] == \
        [la["diff_id"] for la in amd64["layers"]]
    assert store.db.image(result.image.id).index_digest == result.digest  # type: ignore[union-attr]
    # RepoDigests name the index, as Docker's do for a multi-platform image.
    assert store.inspect(result.image.id)["RepoDigests"] == \
        [f"{plain_registry.host}/multiarch@{result.digest}"]


@pytest.mark.parametrize("tag", ["latest", "v2s2"], ids=["oci-index", "docker-list"])
def test_multiarch_select_arm64(plain_registry: Registry, store: ImageStore,
                                index: dict[str, Any], tag: str) -> None:
    arm64 = index["multiarch"]["manifests"][1]
    assert arm64["platform"] == "linux/arm64/v8"
    result = pull(store, f"{plain_registry.host}/multiarch:{tag}", platform="linux/arm64")
    if tag == "latest":
        assert result.manifest_digest == arm64["manifest_digest"]
        assert result.image.id == arm64["image_id"]
    assert result.image.config.architecture == "arm64"
    assert [la.diff_id for la in result.image.layers] == \
        [la["diff_id"] for la in arm64["layers"]]
    assert (_top_dir(store, f"{plain_registry.host}/multiarch:{tag}")
            / "README-arm64.txt").is_file()


def test_pull_twice_everything_already_exists(plain_registry: Registry, store: ImageStore,
                                              index: dict[str, Any]) -> None:
    ref = f"{plain_registry.host}/layers"
    layer_ids = [la["digest"].split(":")[1][:12] for la in index["layers"]["layers"]]
    events: list[ProgressEvent] = []
    first = pull(store, ref, progress=events.append)
    assert events[0].status == "Pulling from layers" and events[0].id == "latest"
    by_layer: dict[str, list[ProgressEvent]] = {}
    for event in events:
        if event.id in layer_ids:
            by_layer.setdefault(event.id, []).append(event)
    assert set(by_layer) == set(layer_ids)
    for layer_id, seen in by_layer.items():
        statuses = [e.status for e in seen]
        assert statuses[0] == "Pulling fs layer", (layer_id, statuses)
        assert "Downloading" in statuses
        assert statuses[-3:] == ["Verifying Checksum", "Download complete", "Pull complete"]
        progress = [e for e in seen if e.status == "Downloading"]
        assert progress[-1].current == progress[-1].total == \
            next(la["compressed_size"] for la in index["layers"]["layers"]
                 if la["digest"].split(":")[1].startswith(layer_id))
        assert progress[-1].message()["progressDetail"] == {
            "current": progress[-1].current, "total": progress[-1].total}
    assert [e.status for e in events[-2:]] == [
        f"Digest: {index['layers']['manifest_digest']}",
        f"Status: Downloaded newer image for {ref}:latest"]
    assert len(first.downloaded) == len(layer_ids) + 1  # and the config

    before = store_state(store)
    events.clear()
    again = pull(store, ref, progress=events.append)
    assert again.up_to_date and again.downloaded == []
    assert again.image.id == first.image.id
    layer_events = [e for e in events if e.id in layer_ids]
    assert [e.status for e in layer_events] == ["Already exists"] * len(layer_ids)
    assert events[-1].status == f"Status: Image is up to date for {ref}:latest"
    after = store_state(store)
    assert after["blobs"] == before["blobs"] and after["snapshots"] == before["snapshots"]


def test_pull_by_digest(plain_registry: Registry, store: ImageStore,
                        index: dict[str, Any]) -> None:
    digest = index["httpd"]["manifest_digest"]
    ref = f"{plain_registry.host}/httpd@{digest}"
    result = pull(store, ref)
    assert result.digest == digest and result.image.id == index["httpd"]["image_id"]
    info = store.inspect(ref)
    assert info["RepoTags"] == [] and info["RepoDigests"] == [ref]
    assert result.status == f"Status: Downloaded newer image for {ref}"


def test_shared_layer_not_downloaded_twice(plain_registry: Registry, store: ImageStore,
                                           index: dict[str, Any]) -> None:
    busybox_layer = index["busybox"]["layers"][0]["digest"]
    pull(store, f"{plain_registry.host}/busybox")
    result = pull(store, f"{plain_registry.host}/httpd")
    assert busybox_layer in result.existing and busybox_layer not in result.downloaded


def test_unknown_tag_and_repository(plain_registry: Registry, store: ImageStore) -> None:
    before = store_state(store)
    with pytest.raises(ManifestUnknown) as err:
        pull(store, f"{plain_registry.host}/busybox:no-such-tag")
    assert str(err.value) == (f"manifest for {plain_registry.host}/busybox:no-such-tag not "
                              "found: manifest unknown: manifest unknown")
    with pytest.raises(ManifestUnknown, match="manifest unknown"):
        pull(store, f"{plain_registry.host}/no/such/repo")
    missing = "sha256:" + "ab" * 32
    with pytest.raises(ManifestUnknown) as err:
        pull(store, f"{plain_registry.host}/busybox@{missing}")
    assert f"manifest for {plain_registry.host}/busybox@{missing} not found" in str(err.value)
    assert store_state(store) == before


def test_platform_errors(plain_registry: Registry, store: ImageStore) -> None:
    with pytest.raises(UnsupportedManifest) as err:
        pull(store, f"{plain_registry.host}/multiarch", platform="linux/s390x")
    assert str(err.value) == "no matching manifest for linux/s390x in the manifest list entries"
    with pytest.raises(UnsupportedManifest) as err:
        pull(store, f"{plain_registry.host}/busybox", platform="linux/arm64")
    assert "does not match the specified platform: wanted linux/arm64, actual: linux/amd64" \
        in str(err.value)
    assert store.db.images() == [] and list(store.content.walk()) == []


def test_connection_refused(store: ImageStore) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on (bound, never listening)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(RegistryConnectionError) as err:
            pull(store, f"127.0.0.1:{port}/busybox")
    assert str(err.value) == (f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: '
                              "connect: connection refused")


def test_tags_and_catalog(plain_registry: Registry) -> None:
    with RegistryClient(plain_registry.host) as client:
        assert sorted(client.tags("busybox")) == ["latest", "oci", "zstd"]
        assert {"busybox", "layers", "httpd", "multiarch"} <= set(client.catalog())
        assert client.ping() == plain_registry.url  # loopback: plain HTTP, as dockerd
