"""`sampan system check` finds what is planted: corruption it must report (a blob that no
longer hashes to its name, a layer snapshot gone, a wrong reference count) and leftovers it
must remove with --repair (temp files, orphan snapshots and blobs, stale pins, mounts,
cgroups and network namespaces). Offline against a stopped sampand's data root, and
through sampand's endpoint; a running sampand's root is refused offline."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import FIXTURES
from .spawn import Spawned, spawned
from .test_crash import SAMPAN, system_check

BUSYBOX_LAYER = "sha256:77b519f600bc35d1cec38aed533c4a8d453fd3c5dc1e9bbcb9fb6f2809bcd673"


@pytest.fixture
def d() -> Iterator[Spawned]:
    with spawned([]) as daemon:
        daemon.start()
        daemon.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield daemon


def offline(d: Spawned, *args: str) -> tuple[int, dict[str, Any]]:
    import json

    proc = subprocess.run([SAMPAN, "system", "check", "--offline", "--format", "json",
                           "--data-root", d.data_root, "--exec-root", d.exec_root,
                           "--cgroup-parent", d.cgroup_parent, *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def kinds(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in report["Findings"]:
        out.setdefault(f["Kind"], []).append(f)
    return out


def test_clean_store_is_clean(d: Spawned) -> None:
    d.ok("run", "-d", "-p", "127.0.0.1::80", "busybox", "sleep", "60")
    report = system_check(d)
    assert report["Clean"], report["Findings"]
    assert report["Checked"]["blobs"] >= 2 and report["Checked"]["containers"] == 1


def test_offline_refused_while_sampand_runs(d: Spawned) -> None:
    proc = subprocess.run([SAMPAN, "system", "check", "--offline", "--data-root",
                           d.data_root, "--exec-root", d.exec_root],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "sampand is running" in proc.stderr, proc


def test_leftovers_found_and_repaired_offline(d: Spawned) -> None:
    cid = d.ok("create", "busybox", "true").strip()
    d.stop()
    data, content = d.data_root, os.path.join(d.data_root, "content")
    planted_tmp = os.path.join(content, "tmp", "0123abcd")
    with open(planted_tmp, "w") as f:
        f.write("half a blob")
    orphan_blob = os.path.join(content, "blobs", "sha256",
                               "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
    with open(orphan_blob, "w") as f:
        f.write("test")  # its sha256 is its name
    with sqlite3.connect(os.path.join(data, "sampan.db")) as db:
        image = db.execute("SELECT id FROM images").fetchone()[0]
        db.execute("INSERT INTO image_users (image_id, holder) VALUES (?, ?)",
                   (image, "f" * 64))
    cgroup = f"/sys/fs/cgroup/pids{d.cgroup_parent}/{'e' * 64}"
    os.makedirs(cgroup)
    netns_file = os.path.join(d.exec_root, "netns", "stale")
    os.makedirs(os.path.dirname(netns_file), exist_ok=True)
    open(netns_file, "w").close()
    subprocess.run(["mount", "--bind", "/proc/self/ns/net", netns_file], check=True)
    mounted = os.path.join(data, "containers", "d" * 64, "rootfs")
    os.makedirs(mounted)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mounted], check=True)
    try:
        code, report = offline(d)
        assert code == 0 and report["Errors"] == 0, report  # leftovers are not corruption
        found = kinds(report)
        assert [f["Object"] for f in found["temp-file"]] == [planted_tmp]
        assert [f["Object"] for f in found["orphan-blob"]] == \
            ["sha256:" + os.path.basename(orphan_blob)]
        assert [f["Object"] for f in found["stale-pin"]] == ["f" * 64]
        assert [f["Object"] for f in found["stale-cgroup"]] == [cgroup]
        assert {f["Object"] for f in found["stale-mount"]} == {netns_file, mounted}
        code, repaired = offline(d, "--repair")
        assert code == 0 and repaired["Remaining"] == 0, repaired
        assert not os.path.exists(planted_tmp) and not os.path.exists(orphan_blob)
        assert not os.path.isdir(cgroup) and not os.path.ismount(mounted)
        assert not os.path.ismount(netns_file)
        assert offline(d)[1]["Clean"]
    finally:
        for point in (mounted, netns_file):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        if os.path.isdir(cgroup):
            os.rmdir(cgroup)
    d.start()
    assert d.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == "created"
    d.ok("rmi", "-f", "busybox")  # the stale pin no longer holds the image


def test_corruption_reported(d: Spawned) -> None:
    """A corrupt blob, a wrong refcount and a lost layer snapshot are errors (status 1);
    the refcount, a container's lost mount point and the snapshot (unpacked again from its
    blob) are repaired, the blob that an image still names is not."""
    cid = d.ok("create", "busybox", "echo", "whole").strip()
    d.stop()
    with sqlite3.connect(os.path.join(d.data_root, "sampan.db")) as db:
        config = db.execute("SELECT id FROM images").fetchone()[0]
        db.execute("UPDATE layers SET refcount = 7")
    path = os.path.join(d.data_root, "content", "blobs", *config.split(":"))
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"X")
    snaps = os.path.join(d.data_root, "snapshots", "overlayfs")
    with sqlite3.connect(os.path.join(snaps, "metadata.db")) as db:
        name = db.execute("SELECT dir FROM snapshots WHERE key = ?",
                          (BUSYBOX_LAYER,)).fetchone()[0]
        db.execute("DELETE FROM snapshots WHERE key = ?", (BUSYBOX_LAYER,))
    subprocess.run(["rm", "-rf", os.path.join(snaps, "snapshots", name)], check=True)
    os.rmdir(os.path.join(d.data_root, "containers", cid, "rootfs"))
    code, report = offline(d)
    assert code == 1
    found = kinds(report)
    assert [f["Object"] for f in found["digest-mismatch"]] == [config]
    assert [f["Object"] for f in found["refcount"]] == [BUSYBOX_LAYER]
    assert [f["Object"] for f in found["missing-snapshot"]] == [config]
    assert [f["Object"] for f in found["missing-rootfs-dir"]] == [cid]
    code, repaired = offline(d, "--repair")
    assert code == 1 and [f["Kind"] for f in repaired["Findings"] if not f["Repaired"]] == \
        ["digest-mismatch"], repaired
    with open(path, "r+b") as f:  # put the byte back: the image is whole again
        f.write(b"{")
    code, report = offline(d)
    assert code == 0 and report["Clean"], report
    d.start()
    assert d.ok("run", "--rm", "busybox", "echo", "whole").strip() == "whole"
    assert d.ok("start", "-a", cid).strip() == "whole"


def test_table_output(d: Spawned) -> None:
    env = {**d.env, "SAMPAN_HOST": d.host, "SAMPAN_NO_AUTOSTART": "1"}
    out = subprocess.run([SAMPAN, "system", "check"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out
    assert "0 finding(s)" in out.stdout and "blobs" in out.stdout
    bad = subprocess.run([SAMPAN, "system", "check", "--data-root", "/x"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 125 and "--offline" in bad.stderr
