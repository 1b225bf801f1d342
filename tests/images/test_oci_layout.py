"""OCI image layouts: what skopeo, buildah and umoci write comes in; what sampan writes,
skopeo reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sampan.images import ImageError, ImageStore, export_layout, import_layout
from sampan.oci.image import parse_platform

from .conftest import FIXTURES, container_rootfs, load_fixture, state


def test_skopeo_layouts_gzip_and_zstd(store: ImageStore, index: dict[str, Any],
                                      tmp_path: Path) -> None:
    for name in ("busybox-zstd", "busybox-oci"):  # zstd first: its layer is the one unpacked
        fixture = index[name]
        [(image, tags)] = import_layout(store, str(FIXTURES / fixture["file"]), name="busybox",
                                       ref_name="latest")
        assert image.id == fixture["image_id"]
        assert image.record.manifest_digest == index["busybox-zstd"]["manifest_digest"]
        assert [t.familiar() for t in tags] == ["busybox:latest"]
        assert store.content.has(fixture["manifest_digest"])
    # Both manifests have one config: one image (Docker's image ID is the config digest).
    assert [r.id for r in store.db.images()] == [index["busybox-oci"]["image_id"]]
    with container_rootfs(store, "busybox", tmp_path) as root:
        assert (root / "bin/busybox").stat().st_size > 1_000_000
        assert "www-data" in (root / "etc/passwd").read_text()


@pytest.mark.parametrize("platform,expect", [(None, "bin/busybox"),
                                             ("linux/amd64", "bin/busybox"),
                                             ("linux/arm64/v8", "README-arm64.txt"),
                                             ("linux/arm64", "README-arm64.txt")])
def test_multiarch_platform_selection(store: ImageStore, index: dict[str, Any], tmp_path: Path,
                                      platform: str | None, expect: str) -> None:
    chosen = parse_platform(platform) if platform else None
    [(image, _)] = import_layout(store, str(FIXTURES / "multiarch.oci"), name="multiarch",
                                 platform=chosen)
    assert image.record.index_digest == index["multiarch"]["manifest_digest"]
    with container_rootfs(store, "multiarch", tmp_path) as root:
        assert (root / expect).exists()


def test_missing_platform_is_a_clear_error(store: ImageStore) -> None:
    with pytest.raises(ImageError, match="no matching manifest for linux/s390x in the "
                                         "manifest list entries"):
        import_layout(store, str(FIXTURES / "multiarch.oci"), platform=parse_platform("s390x"))


def test_umoci_layout(store: ImageStore, tmp_path: Path) -> None:
    layout, bundle = tmp_path / "umoci", tmp_path / "bundle"
    run = lambda *a: subprocess.run(["umoci", *a], check=True, capture_output=True)  # noqa: E731
    run("init", "--layout", str(layout))
    run("new", "--image", f"{layout}:v1")
    run("unpack", "--image", f"{layout}:v1", str(bundle))
    (bundle / "rootfs/hello.txt").write_text("from umoci\n")
    run("repack", "--image", f"{layout}:v1", str(bundle))
    run("config", "--image", f"{layout}:v1", "--config.cmd", "/hello.txt")
    [(image, tags)] = import_layout(store, str(layout), name="umoci-made")
    assert [t.familiar() for t in tags] == ["umoci-made:v1"]
    assert image.config.config and image.config.config.cmd == ["/hello.txt"]
    with container_rootfs(store, "umoci-made:v1", tmp_path) as root:
        assert (root / "hello.txt").read_text() == "from umoci\n"


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True,
                          text=True).stdout


def test_export_is_read_by_skopeo(store: ImageStore, index: dict[str, Any],
                                  tmp_path: Path) -> None:
    load_fixture(store, "layers.docker.tar")
    out = tmp_path / "layout"
    export_layout(store, ["layers:latest"], str(out))
    inspected = json.loads(skopeo("inspect", f"oci:{out}:latest"))
    assert inspected["Layers"] == [la["diff_id"] for la in index["layers"]["layers"]]
    assert inspected["Architecture"] == "amd64" and inspected["Os"] == "linux"
    config = json.loads(skopeo("inspect", "--config", f"oci:{out}:latest"))
    assert config["config"]["User"] == "app"
    copied = tmp_path / "copied"
    skopeo("copy", f"oci:{out}:latest", f"dir:{copied}")
    manifest = json.loads((copied / "manifest.json").read_text())
    assert manifest["config"]["digest"] == index["layers"]["image_id"]
    # ... and it comes back as the same image.
    other = ImageStore(str(tmp_path / "other"))
    try:
        [(image, _)] = import_layout(other, str(out))
        assert image.id == index["layers"]["image_id"] and other.get("layers").id == image.id
    finally:
        other.close()


def test_export_adds_to_an_existing_layout(store: ImageStore, tmp_path: Path) -> None:
    out = tmp_path / "layout"
    shutil.copytree(FIXTURES / "busybox.oci", out)
    for path in [out, *out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    load_fixture(store, "httpd.docker.tar")
    store.tag("httpd", "httpd:v2")
    export_layout(store, ["httpd:v2"], str(out))
    names = {json.loads(skopeo("inspect", f"oci:{out}:{tag}"))["Digest"] for tag in
             ("latest", "v2")}
    assert len(names) == 2


def test_broken_layouts_change_nothing(store: ImageStore, tmp_path: Path) -> None:
    load_fixture(store, "busybox.docker.tar")
    before = state(store)
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURES / "busybox.oci", broken)
    layer = broken / "blobs/sha256/b1adf2881bd4c32a3c29876148f4a353b0193b875b677d070ba823cbf678869c"
    layer.chmod(0o644)
    layer.unlink()
    with pytest.raises(ImageError, match=r"layer 0 blob sha256:b1adf288.* is missing"):
        import_layout(store, str(broken), name="broken")
    assert state(store) == before
    layer.write_bytes(b"not the layer")
    with pytest.raises(ImageError, match=r"layer 0 blob sha256:b1adf288.* is 13 bytes, its "
                                         r"descriptor says 1088195"):
        import_layout(store, str(broken), name="broken")
    assert state(store) == before
    layer.write_bytes(b"x" * 1088195)
    with pytest.raises(ImageError, match=r"layer 0 blob: .*digest mismatch"):
        import_layout(store, str(broken), name="broken")
    assert state(store) == before
    with pytest.raises(ImageError, match=r"not an OCI image layout: .*oci-layout is missing"):
        import_layout(store, str(tmp_path))


def test_umoci_unpacks_the_export(store: ImageStore, tmp_path: Path) -> None:
    load_fixture(store, "layers.docker.tar")
    out, bundle = tmp_path / "layout", tmp_path / "bundle"
    export_layout(store, ["layers:latest"], str(out))
    subprocess.run(["umoci", "unpack", "--image", f"{out}:latest", str(bundle)], check=True,
                   capture_output=True)
    fx = bundle / "rootfs/fixture"
    assert sorted(p.name for p in (fx / "whiteout").iterdir()) == ["kept.txt"]
    assert not (bundle / "rootfs/bin/vi").exists()
    assert (fx / "links/hard-b").stat().st_ino == (fx / "links/hard-a").stat().st_ino
    assert (fx / "modes/owned-by-4242").stat().st_uid == 4242
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["cwd"] == "/home/app/work"
    assert process["args"][0] == "/usr/local/bin/fixture-entrypoint"
    assert "FIXTURE_GREETING=hello world" in process["env"]
    shutil.rmtree(bundle)
