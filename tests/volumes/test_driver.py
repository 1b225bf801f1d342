"""The local volume driver and the volume service on the real filesystem: records that
survive a new instance, atomic create and remove (crash leftovers cleared, foreign
directories left alone), names and options as docker checks them, filesystems mounted
from options while in use, references that block removal, filters and prune."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.volumes import (
    ANONYMOUS_LABEL,
    InvalidVolume,
    LocalDriver,
    VolumeError,
    VolumeInUse,
    VolumeNotFound,
    VolumeService,
)
from sampan.volumes.driver import is_mounted, mounts_under


@pytest.fixture
def root(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "volumes")
    yield path
    for point in mounts_under(str(tmp_path)):
        subprocess.run(["umount", "-l", point], check=False)


def test_create_persists_and_reloads(root: str) -> None:
    driver = LocalDriver(root)
    volume, created = driver.create("data1", labels={"a": "b"}, options=None)
    assert created
    assert volume.mountpoint == os.path.join(root, "data1", "_data")
    assert os.path.isdir(volume.mountpoint)
    again, created = driver.create("data1", labels={"other": "x"})
    assert not created and again.labels == {"a": "b"}  # docker: the existing one
    with open(os.path.join(root, "data1", "_data", "f"), "w") as f:
        f.write("x")
    reloaded = LocalDriver(root).get("data1")
    assert reloaded.to_api() == volume.to_api()
    api = volume.to_api()
    assert api["Scope"] == "local" and api["Driver"] == "local"
    assert api["CreatedAt"].endswith("Z")


def test_leftovers_cleared_foreign_dirs_kept(root: str) -> None:
    LocalDriver(root).create("keep1")
    os.makedirs(os.path.join(root, ".new-deadbeef", "_data"))
    os.makedirs(os.path.join(root, ".rm-deadbeef", "_data"))
    os.makedirs(os.path.join(root, "not-a-volume"))
    driver = LocalDriver(root)
    assert [v.name for v in driver.all()] == ["keep1"]
    assert sorted(os.listdir(root)) == ["keep1", "not-a-volume"]


def test_names_and_options_are_checked(root: str) -> None:
    driver = LocalDriver(root)
    with pytest.raises(InvalidVolume, match="too short"):
        driver.create("a")
    with pytest.raises(InvalidVolume, match="includes invalid characters"):
        driver.create("../escape")
    with pytest.raises(InvalidVolume, match='invalid option: "colour"'):
        driver.create("opts1", options={"colour": "red"})
    with pytest.raises(InvalidVolume, match='missing required option: "device"'):
        driver.create("opts1", options={"type": "tmpfs"})
    with pytest.raises(InvalidVolume, match='missing required option: "type"'):
        driver.create("opts1", options={"o": "size=1m", "device": "tmpfs"})
    with pytest.raises(InvalidVolume, match="no quota support"):
        driver.create("opts1", options={"size": "10m"})
    assert driver.all() == [] and os.listdir(root) == []


def test_remove_is_atomic_and_complete(root: str) -> None:
    driver = LocalDriver(root)
    driver.create("gone1")
    driver.remove("gone1")
    assert os.listdir(root) == []
    with pytest.raises(VolumeNotFound, match="get gone1: no such volume"):
        driver.get("gone1")


def test_tmpfs_option_mounted_while_used(root: str) -> None:
    driver = LocalDriver(root)
    volume, _ = driver.create("tmp1", options={"type": "tmpfs", "device": "tmpfs",
                                               "o": "size=1m,mode=0700"})
    path = driver.mount("tmp1", "c1")
    assert is_mounted(path) and oct(os.stat(path).st_mode & 0o777) == "0o700"
    driver.mount("tmp1", "c2")
    driver.unmount("tmp1", "c1")
    assert is_mounted(path)  # c2 still holds it
    driver.unmount("tmp1", "c2")
    assert not is_mounted(path)
    # a new driver (a restarted daemon) finds a mount left in place and takes it over
    driver.mount("tmp1", "c3")
    fresh = LocalDriver(root)
    fresh.mount("tmp1", "c3")
    fresh.unmount("tmp1", "c3")
    assert not is_mounted(volume.mountpoint)


def test_bind_option_never_deletes_the_host_dir(root: str, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "precious").write_text("keep")
    driver = LocalDriver(root)
    driver.create("bind1", options={"type": "none", "o": "bind,ro", "device": str(host)})
    path = driver.mount("bind1", "c1")
    assert open(os.path.join(path, "precious")).read() == "keep"
    with pytest.raises(OSError):
        open(os.path.join(path, "new"), "w")  # o=ro honoured
    driver.remove("bind1")  # unmounts first, then deletes only the volume
    assert (host / "precious").read_text() == "keep"


def test_remove_refuses_while_something_is_mounted(root: str) -> None:
    driver = LocalDriver(root)
    volume, _ = driver.create("busy1")
    sub = os.path.join(volume.mountpoint, "sub")
    os.mkdir(sub)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", sub], check=True)
    try:
        with pytest.raises(VolumeError, match="still mounted"):
            driver.remove("busy1")
        assert driver.exists("busy1") and os.path.isdir(sub)
    finally:
        subprocess.run(["umount", sub], check=True)
    driver.remove("busy1")


def test_failed_mount_reports_and_leaves_nothing(root: str) -> None:
    driver = LocalDriver(root)
    volume, _ = driver.create("bad1", options={"type": "no-such-fs", "device": "x"})
    with pytest.raises(VolumeError, match="failed to mount local volume"):
        driver.mount("bad1", "c1")
    assert not is_mounted(volume.mountpoint) and not driver.active("bad1")


def test_service_references_filters_prune(root: str) -> None:
    events: list[tuple[str, str]] = []
    service = VolumeService(root, on_event=lambda a, n, attrs: events.append((a, n)))
    service.create("named1", labels={"tier": "gold"})
    anon, _ = service.create(ref="c1")
    idle_anon, _ = service.create()
    assert anon.anonymous and anon.labels == {ANONYMOUS_LABEL: ""} and len(anon.name) == 64
    with pytest.raises(VolumeInUse, match=rf"remove {anon.name}: volume is in use - \[c1\]"):
        service.remove(anon.name, force=True)  # force does not override use, as dockerd
    service.remove("nothing-here", force=True)
    with pytest.raises(VolumeNotFound):
        service.remove("nothing-here")
    names = lambda vs: {v.name for v in vs}  # noqa: E731
    assert names(service.find({"dangling": ["true"]})) == {"named1", idle_anon.name}
    assert names(service.find({"dangling": ["0"]})) == {anon.name}
    assert names(service.find({"label": ["tier=gold"]})) == {"named1"}
    assert names(service.find({"label": [ANONYMOUS_LABEL]})) == {anon.name, idle_anon.name}
    assert names(service.find({"name": ["amed"]})) == {"named1"}
    with pytest.raises(InvalidVolume, match="invalid filter 'colour'"):
        service.find({"colour": ["red"]})
    with pytest.raises(InvalidVolume):
        service.find({"dangling": ["maybe"]})
    with open(os.path.join(idle_anon.mountpoint, "f"), "w") as f:
        f.write("12345")
    removed, reclaimed = service.prune()
    assert removed == [idle_anon.name] and reclaimed == 5
    removed, _ = service.prune({"all": ["true"], "label!": ["tier=gold"]})
    assert removed == []
    removed, _ = service.prune(all_volumes=True)
    assert removed == ["named1"]
    service.release(anon.name, "c1")
    service.remove(anon.name)
    assert service.find() == []
    assert ("create", "named1") in events and ("destroy", anon.name) in events
    with pytest.raises(VolumeNotFound, match="plugin"):
        service.create("x1", driver="nfs-plugin")


def test_record_file_is_json(root: str) -> None:
    LocalDriver(root).create("rec1", labels={"k": "v"}, options={})
    with open(os.path.join(root, "rec1", "volume.json")) as f:
        data = json.load(f)
    assert data["Name"] == "rec1" and data["Labels"] == {"k": "v"} and data["Options"] == {}
