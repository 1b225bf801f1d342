"""`docker cp` both ways (the archive endpoints): running and stopped containers, tmpfs
mounts seen from inside, symlinks and ``..`` that must stay in the container, ownership
with -a, tar on stdin, docker-py's put_archive/get_archive, export, and raw HTTP errors."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Daemon


def _name() -> str:
    return "cp-" + uuid.uuid4().hex[:10]


@pytest.fixture
def running(daemon: Daemon) -> Iterator[str]:
    name = _name()
    daemon.ok("run", "-d", "--name", name, "--tmpfs", "/scratch", "busybox", "sleep", "300")
    daemon.ok("exec", name, "sh", "-c",
              "mkdir -p /data/sub && echo hello > /data/sub/f && "
              "ln -s /etc/passwd /data/pw && ln -s ../../../../etc /up && "
              "echo inside > /scratch/t")
    yield name
    daemon.ok("rm", "-f", name)


def _stat(daemon: Daemon, name: str, path: str) -> tuple[int, dict[str, Any]]:
    with daemon.http() as http:
        r = http.head(f"/v1.45/containers/{name}/archive", params={"path": path})
    header = r.headers.get("X-Docker-Container-Path-Stat")
    return r.status_code, json.loads(base64.b64decode(header)) if header else {}


def test_cp_out_of_a_running_container(daemon: Daemon, running: str, tmp_path: Path) -> None:
    daemon.ok("cp", f"{running}:/data/sub/f", str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "hello\n"
    daemon.ok("cp", f"{running}:/data", str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "sub" / "f").read_text() == "hello\n"
    assert os.readlink(tmp_path / "copy" / "pw") == "/etc/passwd"  # the link, not the host's
    # the container's tmpfs, seen through its mount namespace
    daemon.ok("cp", f"{running}:/scratch/t", str(tmp_path / "t"))
    assert (tmp_path / "t").read_text() == "inside\n"
    # trailing /. copies the contents into an existing directory
    (tmp_path / "into").mkdir()
    daemon.ok("cp", f"{running}:/data/sub/.", str(tmp_path / "into"))
    assert (tmp_path / "into" / "f").read_text() == "hello\n"
    # the whole root as a tar on stdout, named as docker names it; /proc and /sys empty
    with daemon.http(timeout=120) as http:
        r = http.get(f"/v1.45/containers/{running}/archive", params={"path": "/"})
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        names = tar.getnames()
    assert {"", "/bin/busybox", "/data/sub/f", "/proc", "/sys"} <= set(names)  # "/" is ""
    assert not [n for n in names if n.startswith(("/proc/", "/sys/"))]


def test_symlinks_resolve_inside_the_container(daemon: Daemon, running: str,
                                               tmp_path: Path) -> None:
    container_passwd = daemon.ok("exec", running, "cat", "/etc/passwd")
    daemon.ok("cp", "-L", f"{running}:/data/pw", str(tmp_path / "pw"))
    assert (tmp_path / "pw").read_text() == container_passwd
    status, info = _stat(daemon, running, "/data/pw")
    assert status == 200 and info["linkTarget"] == "/etc/passwd" and info["name"] == "pw"
    status, info = _stat(daemon, running, "/up")
    assert info["linkTarget"] == "/etc"
    # ../ beyond the root stays at the container's root, reading and writing
    daemon.ok("cp", f"{running}:/../../../../etc/passwd", str(tmp_path / "p2"))
    assert (tmp_path / "p2").read_text() == container_passwd
    marker = tmp_path / "marker"
    marker.write_text("from host\n")
    host_etc = set(os.listdir("/etc"))
    daemon.ok("cp", str(marker), f"{running}:/up/")  # /up -> ../../../../etc
    daemon.ok("cp", str(marker), f"{running}:../../../../tmp/")
    assert set(os.listdir("/etc")) == host_etc and not os.path.exists("/tmp/marker")
    assert daemon.ok("exec", running, "cat", "/etc/marker", "/tmp/marker") == "from host\n" * 2


def test_cp_into_a_container(daemon: Daemon, running: str, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "g").write_text("gee\n")
    os.chown(src / "deep" / "g", 1234, 2345)
    daemon.ok("cp", str(src), f"{running}:/data/")  # a dir into an existing dir
    assert daemon.ok("exec", running, "cat", "/data/tree/deep/g") == "gee\n"
    assert daemon.ok("exec", running, "stat", "-c", "%u:%g",
                     "/data/tree/deep/g").strip() == "1234:2345"
    daemon.ok("cp", str(src), f"{running}:/newdir")  # a dir to a new name
    assert daemon.ok("exec", running, "cat", "/newdir/deep/g") == "gee\n"
    daemon.ok("cp", str(src / "deep" / "g"), f"{running}:/scratch/renamed")  # into the tmpfs
    assert daemon.ok("exec", running, "cat", "/scratch/renamed") == "gee\n"
    refused = daemon.docker("cp", str(src / "deep" / "g"), f"{running}:/data/sub")
    assert refused.returncode == 0  # a file into an existing directory lands inside it
    assert daemon.ok("exec", running, "cat", "/data/sub/g") == "gee\n"
    over = daemon.docker("cp", str(src / "deep" / "g"), f"{running}:/data/sub/f/")
    assert over.returncode != 0 and "no such directory" in over.stderr  # a file as a dir
    over = daemon.docker("cp", str(src), f"{running}:/data/sub/f")
    assert over.returncode != 0 and "cannot copy directory" in over.stderr
    assert daemon.ok("exec", running, "cat", "/data/sub/f") == "hello\n"
    missing = daemon.docker("cp", str(src / "deep" / "g"), f"{running}:/missing/dir/x")
    assert missing.returncode != 0
    assert f"Could not find the file /missing/dir in container {running}" in missing.stderr
    # a tar on stdin
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("piped.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"piped\n"))
    result = daemon.docker("cp", "-", f"{running}:/data", input=buf.getvalue().decode())
    assert result.returncode == 0, result.stderr
    assert daemon.ok("exec", running, "cat", "/data/piped.txt") == "piped\n"


def test_cp_archive_mode_takes_the_container_user(daemon: Daemon, tmp_path: Path) -> None:
    name = _name()
    daemon.ok("run", "-d", "--name", name, "-u", "1000:1000", "busybox", "sleep", "300")
    try:
        src = tmp_path / "owned"
        src.write_text("x\n")
        os.chown(src, 1234, 2345)
        daemon.ok("cp", str(src), f"{name}:/tmp/plain")
        daemon.ok("cp", "-a", str(src), f"{name}:/tmp/archived")
        owners = daemon.ok("exec", name, "stat", "-c", "%u:%g", "/tmp/plain", "/tmp/archived")
        assert owners.split() == ["1234:2345", "1000:1000"]
    finally:
        daemon.ok("rm", "-f", name)


def test_cp_with_a_stopped_container(daemon: Daemon, tmp_path: Path) -> None:
    name = _name()
    daemon.ok("create", "--name", name, "busybox", "cat", "/etc/copied")
    try:
        (tmp_path / "copied").write_text("before start\n")
        daemon.ok("cp", str(tmp_path / "copied"), f"{name}:/etc/copied")
        daemon.ok("cp", f"{name}:/etc/copied", str(tmp_path / "back"))
        assert (tmp_path / "back").read_text() == "before start\n"
        assert daemon.ok("start", "-a", name) == "before start\n"
        daemon.ok("cp", f"{name}:/etc/copied", str(tmp_path / "after"))  # exited now
        assert (tmp_path / "after").read_text() == "before start\n"
        cid = daemon.ok("inspect", "-f", "{{.Id}}", name).strip()
        deadline = time.monotonic() + 10  # the CLI may be done before the daemon unmounts
        while True:
            with open("/proc/self/mountinfo") as f:
                if cid not in f.read():
                    break  # nothing left mounted
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.1)
    finally:
        daemon.ok("rm", "-f", name)


def test_dockerpy_put_and_get_archive(docker_client: Any, running: str) -> None:
    container = docker_client.containers.get(running)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("py/file")
        info.size = 3
        info.mode = 0o640
        tar.addfile(info, io.BytesIO(b"py\n"))
    assert container.put_archive("/data", buf.getvalue())
    chunks, stat = container.get_archive("/data/py")
    assert stat["name"] == "py" and stat["mode"] & (1 << 31)  # Go's ModeDir
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.getmember("py/file")
        assert tar.extractfile(member).read() == b"py\n" and member.mode == 0o640


def test_archive_errors(daemon: Daemon, running: str) -> None:
    with daemon.http() as http:
        base = f"/v1.45/containers/{running}/archive"
        assert http.head("/v1.45/containers/nope/archive", params={"path": "/"}
                         ).status_code == 404
        r = http.get("/v1.45/containers/nope/archive", params={"path": "/"})
        assert r.status_code == 404 and "No such container: nope" in r.json()["message"]
        r = http.get(base, params={"path": "/no/such"})
        assert r.status_code == 404
        assert r.json()["message"] == f"Could not find the file /no/such in container {running}"
        assert http.head(base, params={"path": "/no/such"}).status_code == 404
        r = http.get(base)
        assert r.status_code == 400 and "path" in r.json()["message"]
        r = http.put(base, params={"path": "/etc/passwd"}, content=b"")
        assert r.status_code == 400 and "not a directory" in r.json()["message"]
        r = http.put(base, params={"path": "/nowhere"}, content=b"")
        assert r.status_code == 404
        r = http.put(base, params={"path": "/data"}, content=b"not a tar at all" * 64)
        assert r.status_code == 400


def test_export(daemon: Daemon, docker_client: Any, running: str, tmp_path: Path) -> None:
    out = tmp_path / "export.tar"
    daemon.ok("export", "-o", str(out), running)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert {"bin/busybox", "data/sub/f", "etc/passwd"} <= names
        assert tar.extractfile("data/sub/f").read() == b"hello\n"
    data = b"".join(docker_client.containers.get(running).export())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "data/sub/f" in tar.getnames()
    with daemon.http() as http:
        assert http.get("/v1.45/containers/nope/export").status_code == 404


def _tar(name: str, data: bytes | None) -> bytes:
    """A tar with one entry: a file with ``data``, or a directory (None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        if data is None:
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_no_overwrite_dir_non_dir_and_read_only_rootfs(daemon: Daemon, running: str) -> None:
    base = f"/v1.45/containers/{running}/archive"
    with daemon.http() as http:
        r = http.put(base, params={"path": "/data", "noOverwriteDirNonDir": "1"},
                     content=_tar("sub", b"file over dir\n"))
        assert r.status_code == 400 and "cannot overwrite directory" in r.json()["message"]
        r = http.put(base, params={"path": "/data/sub", "noOverwriteDirNonDir": "true"},
                     content=_tar("f", None))
        assert r.status_code == 400 and "cannot overwrite non-directory" in r.json()["message"]
        assert daemon.ok("exec", running, "cat", "/data/sub/f") == "hello\n"  # untouched
        r = http.put(base, params={"path": "/data"}, content=_tar("sub", b"replaced\n"))
        assert r.status_code == 200  # without the flag, docker replaces it
        assert daemon.ok("exec", running, "cat", "/data/sub") == "replaced\n"
    name = _name()
    daemon.ok("run", "-d", "--name", name, "--read-only", "--tmpfs", "/scratch", "busybox",
              "sleep", "300")
    try:
        with daemon.http() as http:
            r = http.put(f"/v1.45/containers/{name}/archive", params={"path": "/etc"},
                         content=_tar("x", b"x"))
            assert r.status_code == 403
            assert r.json()["message"] == "container rootfs is marked read-only"
            r = http.put(f"/v1.45/containers/{name}/archive", params={"path": "/scratch"},
                         content=_tar("x", b"x\n"))
            assert r.status_code == 200
        assert daemon.ok("exec", name, "cat", "/scratch/x") == "x\n"
    finally:
        daemon.ok("rm", "-f", name)


def test_open_in_root_stays_inside(tmp_path: Path) -> None:
    from sampan.kernel.resolve import open_in_root

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside\n")
    (root / "abs").symlink_to("/etc/passwd")
    (root / "rel").symlink_to("../../../../../etc/passwd")
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for path in ("/abs", "rel", "../../etc/passwd", "/../etc/../etc/passwd"):
            fd = open_in_root(rootfd, path, os.O_RDONLY)
            with os.fdopen(fd) as f:
                assert f.read() == "inside\n", path
        with pytest.raises(FileNotFoundError):  # the host's /proc is not below this root
            open_in_root(rootfd, "/proc/self/root/etc/passwd", os.O_RDONLY)
    finally:
        os.close(rootfd)


def test_cp_through_a_named_volume(daemon: Daemon, tmp_path: Path) -> None:
    name, volume = _name(), "cpvol-" + uuid.uuid4().hex[:8]
    daemon.ok("run", "-d", "--name", name, "-v", f"{volume}:/vol", "busybox", "sleep", "300")
    try:
        (tmp_path / "v").write_text("into the volume\n")
        daemon.ok("cp", str(tmp_path / "v"), f"{name}:/vol/v")
        out = daemon.ok("run", "--rm", "-v", f"{volume}:/other", "busybox", "cat", "/other/v")
        assert out == "into the volume\n"
        daemon.ok("cp", f"{name}:/vol/v", str(tmp_path / "back"))
        assert (tmp_path / "back").read_text() == "into the volume\n"
        daemon.ok("stop", "-t", "0", name)  # stopped: its volume is mounted for the copy
        daemon.ok("cp", f"{name}:/vol/v", str(tmp_path / "stopped"))
        assert (tmp_path / "stopped").read_text() == "into the volume\n"
        (tmp_path / "w").write_text("while stopped\n")
        daemon.ok("cp", str(tmp_path / "w"), f"{name}:/vol/w")
        out = daemon.ok("run", "--rm", "-v", f"{volume}:/other", "busybox", "cat", "/other/w")
        assert out == "while stopped\n"
    finally:
        daemon.ok("rm", "-f", name)
        daemon.docker("volume", "rm", volume)


def test_cp_with_volumes_of_a_created_container(daemon: Daemon, tmp_path: Path) -> None:
    """A container never started has no mount points in its filesystem yet: as dockerd,
    the archive endpoints make them and mount its named volumes and binds there, so `cp`
    reads and writes the volumes' contents, not the container's layer."""
    name, volume = _name(), "cpvol-" + uuid.uuid4().hex[:8]
    host_dir, host_file = tmp_path / "hostdir", tmp_path / "bound.conf"
    host_dir.mkdir()
    host_file.write_text("bound file\n")
    daemon.ok("run", "--rm", "-v", f"{volume}:/x", "busybox", "sh", "-c",
              "echo already > /x/pre")
    daemon.ok("create", "--name", name, "-v", f"{volume}:/new/vol", "-v",
              f"{host_dir}:/new/bind", "-v", f"{host_file}:/etc/bound.conf:ro", "busybox",
              "sh", "-c", "cat /new/vol/pre /new/vol/in /new/bind/in /etc/bound.conf")
    try:
        daemon.ok("cp", f"{name}:/new/vol/pre", str(tmp_path / "pre"))
        assert (tmp_path / "pre").read_text() == "already\n"
        (tmp_path / "in").write_text("copied in\n")
        daemon.ok("cp", str(tmp_path / "in"), f"{name}:/new/vol/in")
        daemon.ok("cp", str(tmp_path / "in"), f"{name}:/new/bind/")
        assert (host_dir / "in").read_text() == "copied in\n"
        out = daemon.ok("run", "--rm", "-v", f"{volume}:/x", "busybox", "cat", "/x/in")
        assert out == "copied in\n"
        daemon.ok("cp", f"{name}:/etc/bound.conf", str(tmp_path / "back.conf"))
        assert (tmp_path / "back.conf").read_text() == "bound file\n"
        status, info = _stat(daemon, name, "/new/vol/in")
        assert status == 200 and info["size"] == len("copied in\n")
        # the mount points stay in its layer, as dockerd leaves them; the files do not
        changes = daemon.ok("diff", name).split("\n")
        assert "A /new/vol" in changes and "A /new/vol/in" not in changes
        assert daemon.ok("start", "-a", name) == \
            "already\ncopied in\ncopied in\nbound file\n"
        cid = daemon.ok("inspect", "-f", "{{.Id}}", name).strip()
        with open("/proc/self/mountinfo") as f:
            assert f"{cid}/rootfs/new" not in f.read()
    finally:
        daemon.ok("rm", "-f", name)
        daemon.docker("volume", "rm", volume)
