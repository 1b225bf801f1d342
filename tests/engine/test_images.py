"""Image endpoints through the docker CLI: list, inspect, tag, remove, save and load."""

from __future__ import annotations

import json
import os
import tarfile

from .conftest import Daemon


def test_images_list_and_inspect(daemon: Daemon) -> None:
    rows = daemon.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").split("\n")
    assert any(r.startswith("busybox:latest ") for r in rows)
    inspect = json.loads(daemon.ok("image", "inspect", "busybox"))[0]
    assert inspect["Id"].startswith("sha256:")
    assert inspect["RepoTags"] == ["busybox:latest"]
    assert inspect["Os"] == "linux"
    assert inspect["RootFS"]["Type"] == "layers"


def test_tag_and_remove(daemon: Daemon) -> None:
    daemon.ok("tag", "busybox", "sampan-test/bb:v1")
    assert "sampan-test/bb:v1" in daemon.ok("images", "--format",
                                            "{{.Repository}}:{{.Tag}}")
    out = daemon.ok("rmi", "sampan-test/bb:v1")
    assert "Untagged: sampan-test/bb:v1" in out
    missing = daemon.docker("image", "inspect", "sampan-test/bb:v1")
    assert missing.returncode == 1
    assert "No such image" in missing.stderr


def test_remove_unknown_image_is_404(daemon: Daemon) -> None:
    with daemon.http() as http:
        response = http.delete("/v1.45/images/nosuch:image")
    assert response.status_code == 404
    assert "No such image" in response.json()["message"]


def test_save_and_load_round_trip(daemon: Daemon, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "bb.tar")
    daemon.ok("save", "-o", path, "busybox")
    with tarfile.open(path) as tar:
        assert "manifest.json" in tar.getnames()
    daemon.ok("tag", "busybox", "sampan-test/saved:1")
    daemon.ok("save", "-o", path, "sampan-test/saved:1")
    daemon.ok("rmi", "sampan-test/saved:1")
    out = daemon.ok("load", "-i", path)
    assert "Loaded image: sampan-test/saved:1" in out
    daemon.ok("rmi", "sampan-test/saved:1")


def test_import_a_rootfs_made_without_network_and_run_it(daemon: Daemon, tmp_path) -> None:
    """The README's main job: a busybox rootfs from Debian's busybox-static, imported with
    `docker import` and run."""
    import subprocess

    from ..runtime.helpers import make_rootfs

    rootfs = make_rootfs(str(tmp_path / "rootfs"))
    tarball = str(tmp_path / "rootfs.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
    image_id = daemon.ok("import", "--change", 'CMD ["sh", "-c", "echo imported $GREETING"]',
                         "--change", "ENV GREETING=hello", "-m", "from busybox-static",
                         tarball, "sampan-test/imported:1")
    assert image_id.startswith("sha256:")
    assert daemon.ok("run", "--rm", "sampan-test/imported:1").strip() == "imported hello"
    history = daemon.ok("history", "--format", "{{.Comment}}", "sampan-test/imported:1")
    assert history.strip() == "from busybox-static"
    daemon.ok("rmi", "sampan-test/imported:1")
