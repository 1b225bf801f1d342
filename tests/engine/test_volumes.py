"""Volumes and mounts through the real docker CLI: named volumes outliving containers, bind
mounts seen both ways, read-only mounts, tmpfs, --volumes-from, copy-up from the image,
volume ls/inspect/rm/prune, `rm -v` and `--rm`, and volumes across a restart of sampand."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from .conftest import FIXTURES, Daemon


def _name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def hostdir(tmp_path: Path) -> str:
    path = tmp_path / "bind"
    path.mkdir()
    return str(path)


@pytest.fixture(scope="module")
def layers(daemon: Daemon) -> str:
    daemon.ok("load", "-i", str(FIXTURES / "layers.docker.tar"), timeout=120)
    return "layers"


def _volumes(daemon: Daemon, *filters: str) -> list[str]:
    args = [a for f in filters for a in ("--filter", f)]
    return daemon.ok("volume", "ls", "-q", *args).split()


def test_named_volume_outlives_its_container(daemon: Daemon) -> None:
    vol = _name("v")
    try:
        daemon.ok("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c",
                  "echo kept > /data/file")
        assert vol in _volumes(daemon)  # made on first use, kept after --rm
        assert daemon.ok("run", "--rm", "-v", f"{vol}:/data", "busybox",
                         "cat", "/data/file") == "kept\n"
        mountpoint = daemon.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip()
        with open(os.path.join(mountpoint, "file")) as f:
            assert f.read() == "kept\n"
    finally:
        daemon.docker("volume", "rm", vol)


def test_bind_mount_both_ways_while_running(daemon: Daemon, hostdir: str) -> None:
    name = _name()
    with open(os.path.join(hostdir, "from-host"), "w") as f:
        f.write("one\n")
    daemon.ok("run", "-d", "--name", name, "-v", f"{hostdir}:/shared", "busybox",
              "sleep", "300")
    try:
        assert daemon.ok("exec", name, "cat", "/shared/from-host") == "one\n"
        with open(os.path.join(hostdir, "from-host"), "w") as f:
            f.write("two\n")  # a host edit, seen at once inside
        assert daemon.ok("exec", name, "cat", "/shared/from-host") == "two\n"
        daemon.ok("exec", name, "sh", "-c", "echo inside > /shared/from-ctr")
        with open(os.path.join(hostdir, "from-ctr")) as f:
            assert f.read() == "inside\n"
        mounts = json.loads(daemon.ok("inspect", "-f", "{{json .Mounts}}", name))
        assert mounts == [{"Type": "bind", "Source": hostdir, "Destination": "/shared",
                           "Mode": "", "RW": True, "Propagation": "rprivate"}]
    finally:
        daemon.ok("rm", "-f", name)


def test_read_only_mounts_refuse_writes(daemon: Daemon, hostdir: str) -> None:
    result = daemon.docker("run", "--rm", "-v", f"{hostdir}:/ro:ro,Z", "busybox",
                           "sh", "-c", "touch /ro/x")
    assert result.returncode == 1
    assert "Read-only file system" in result.stderr
    assert os.listdir(hostdir) == []
    result = daemon.docker("run", "--rm", "--mount",
                           f"type=bind,src={hostdir},dst=/ro,readonly,bind-propagation=rslave",
                           "busybox", "sh", "-c", "echo x > /ro/x")
    assert result.returncode == 1 and "Read-only file system" in result.stderr
    assert os.listdir(hostdir) == []


def test_read_only_rootfs_with_writable_volume_and_tmpfs(daemon: Daemon) -> None:
    vol = _name("v")
    try:
        out = daemon.ok("run", "--rm", "--read-only", "-v", f"{vol}:/data", "--tmpfs", "/run",
                        "busybox", "sh", "-c",
                        "echo a > /data/a && echo b > /run/b && echo writable; "
                        "touch /rootfile 2>&1 || true")
        assert out.splitlines()[0] == "writable"
        assert "Read-only file system" in out
    finally:
        daemon.docker("volume", "rm", vol)


def test_bind_sources_missing(daemon: Daemon, hostdir: str) -> None:
    missing = os.path.join(hostdir, "a", "b")
    result = daemon.docker("run", "--rm", "--mount", f"type=bind,src={missing},dst=/x",
                           "busybox", "true")
    assert result.returncode == 125
    assert ('invalid mount config for type "bind": bind source path does not exist: '
            f"{missing}") in result.stderr
    assert not os.path.exists(os.path.join(hostdir, "a"))
    daemon.ok("run", "--rm", "-v", f"{missing}:/x", "busybox", "true")  # -v makes it
    assert stat.S_ISDIR(os.stat(missing).st_mode)
    other = os.path.join(hostdir, "c")
    with daemon.http() as http:  # the v28 CLI has no flag for CreateMountpoint
        response = http.post("/v1.45/containers/create", json={
            "Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [
                {"Type": "bind", "Source": other, "Target": "/x",
                 "BindOptions": {"CreateMountpoint": True}}]}})
        assert response.status_code == 201, response.text
    daemon.ok("start", "-a", response.json()["Id"])
    daemon.ok("rm", response.json()["Id"])
    assert stat.S_ISDIR(os.stat(other).st_mode)


def test_invalid_specs_are_400_and_leave_nothing(daemon: Daemon) -> None:
    before = (daemon.ok("ps", "-aq"), _volumes(daemon))
    for args, message in (
            (["-v", "rel:dst"], "invalid mount path: 'dst' mount path must be absolute"),
            (["-v", "/a:/x:bogus"], "invalid mode: bogus"),
            (["--mount", "type=volume,src=x,dst=/d"], "volume name is too short"),
            (["-v", "bad*name:/d"], '"bad*name" includes invalid characters'),
            (["-v", "v1ok:/d", "-v", "/tmp:/d"], "Duplicate mount point: /d"),
            (["--mount", "type=tmpfs,src=foo,dst=/t"], "field Source must not be specified"),
            (["--volumes-from", "no-such-container", "-v", "vnew:/d"],
             "No such container: no-such-container"),
    ):
        result = daemon.docker("create", *args, "busybox", "true")
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
    with daemon.http() as http:
        body: dict[str, object] = {"Image": "busybox", "Cmd": ["true"]}
        body["HostConfig"] = {"Mounts": [{"Type": "bind", "Source": "/", "Target": "rel"}]}
        response = http.post("/v1.45/containers/create", json=body)
        assert response.status_code == 400
        assert "invalid mount path: 'rel' mount path must be absolute" in \
            response.json()["message"]
    assert (daemon.ok("ps", "-aq"), _volumes(daemon)) == before


def test_tmpfs_is_empty_on_each_start_and_bounded(daemon: Daemon) -> None:
    name = _name()
    daemon.ok("create", "--name", name, "--tmpfs", "/scratch:size=1m,mode=1770", "busybox",
              "sh", "-c", "ls -A /scratch | wc -l; stat -c %a /scratch; "
              "echo x > /scratch/was-here; "
              "dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null || echo full")
    try:
        first = daemon.ok("start", "-a", name)
        second = daemon.ok("start", "-a", name)
        assert first == second == "0\n1770\nfull\n"
    finally:
        daemon.ok("rm", name)
    out = daemon.ok("run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=65536",
                    "busybox", "sh", "-c",
                    "dd if=/dev/zero of=/t/f bs=1k count=128 2>/dev/null || echo full; "
                    "grep ' /t ' /proc/mounts")
    assert out.startswith("full\n")
    assert "size=64k" in out and "noexec" in out


def test_volumes_from(daemon: Daemon, hostdir: str) -> None:
    src, vol = _name(), _name("v")
    daemon.ok("create", "--name", src, "-v", f"{vol}:/data", "-v", f"{hostdir}:/h",
              "-v", "/anon", "busybox", "true")
    try:
        daemon.ok("run", "--rm", "--volumes-from", src, "busybox", "sh", "-c",
                  "echo shared > /data/f; echo bind > /h/f; echo anon > /anon/f")
        out = daemon.ok("run", "--rm", "--volumes-from", src, "busybox",
                        "cat", "/data/f", "/h/f", "/anon/f")
        assert out == "shared\nbind\nanon\n"
        result = daemon.docker("run", "--rm", "--volumes-from", f"{src}:ro", "busybox",
                               "touch", "/data/g")
        assert result.returncode == 1 and "Read-only file system" in result.stderr
    finally:
        daemon.ok("rm", "-v", src)
        daemon.docker("volume", "rm", vol)


def test_copy_up_from_the_image(daemon: Daemon, layers: str) -> None:
    vol, name = _name("v"), _name()
    try:
        out = daemon.ok("run", "--rm", "-v", f"{vol}:/data", "--entrypoint", "sh", layers,
                        "-c", "ls -ln /data | grep seed; echo changed > /data/seed.txt; "
                        "echo new > /data/other.txt")
        fields = out.split()
        assert fields[0] == "-rw-r--r--" and fields[2:4] == ["1000", "1000"], out
        mountpoint = daemon.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip()
        st = os.stat(mountpoint)
        assert (st.st_uid, st.st_gid) == (1000, 1000)  # the directory's owner copied too
        # the second mount does not copy again: the volume keeps what was written
        out = daemon.ok("run", "--rm", "-v", f"{vol}:/data", "--entrypoint", "sh", layers,
                        "-c", "cat /data/seed.txt /data/other.txt")
        assert out == "changed\nnew\n"
        # nocopy: a new volume stays empty
        out = daemon.ok("run", "--rm", "--mount", "type=volume,dst=/data,volume-nocopy",
                        "--entrypoint", "ls", layers, "-A", "/data")
        assert out == ""
        # the image's VOLUME: an anonymous volume with the image's content
        daemon.ok("create", "--name", name, "--entrypoint", "cat", layers, "/data/seed.txt")
        mounts = json.loads(daemon.ok("inspect", "-f", "{{json .Mounts}}", name))
        assert [(m["Type"], m["Destination"], len(m["Name"])) for m in mounts] == [
            ("volume", "/data", 64)]
        assert daemon.ok("start", "-a", name)
    finally:
        daemon.docker("rm", "-v", name)
        daemon.docker("volume", "rm", vol)


def test_modes_and_special_files_copied(daemon: Daemon, layers: str) -> None:
    vol = _name("v")
    try:
        daemon.ok("run", "--rm", "-v", f"{vol}:/fixture/modes", "--entrypoint", "true", layers)
        data = daemon.ok("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip()

        def mode(name: str) -> int:
            return os.lstat(os.path.join(data, name)).st_mode

        assert stat.S_IMODE(mode("setuid-file")) == 0o4755
        assert stat.S_IMODE(mode("setgid-dir")) == 0o2775
        assert stat.S_IMODE(mode("sticky-dir")) == 0o1777
        assert stat.S_IMODE(mode("mode-0000")) == 0
        assert stat.S_ISCHR(mode("chardev-1-3")) and stat.S_ISFIFO(mode("fifo"))
        st = os.lstat(os.path.join(data, "owned-by-4242"))
        assert (st.st_uid, st.st_gid) == (4242, 4343)
        assert int(os.lstat(os.path.join(data, "old-mtime")).st_mtime) == 981173106
    finally:
        daemon.docker("volume", "rm", vol)


def test_volume_ls_filters_and_inspect(daemon: Daemon) -> None:
    used, idle, name = _name("used"), _name("idle"), _name()
    daemon.ok("volume", "create", "--label", "tier=gold", "--label", "solo", used)
    daemon.ok("volume", "create", "--label", "tier=tin", idle)
    daemon.ok("create", "--name", name, "-v", f"{used}:/d", "busybox", "true")
    try:
        info = json.loads(daemon.ok("volume", "inspect", used))[0]
        assert set(info) >= {"Name", "Driver", "Mountpoint", "CreatedAt", "Labels",
                             "Options", "Scope"}
        assert info["Driver"] == "local" and info["Scope"] == "local"
        assert info["Labels"] == {"tier": "gold", "solo": ""}
        assert info["Options"] is None  # as dockerd: the CLI sends no DriverOpts
        assert info["Mountpoint"].endswith(f"/volumes/{used}/_data")
        assert info["CreatedAt"].endswith("Z") and info["CreatedAt"][:2] == "20"
        mine = {used, idle}
        assert mine <= set(_volumes(daemon))
        assert set(_volumes(daemon, "dangling=true")) & mine == {idle}
        assert set(_volumes(daemon, "dangling=false")) & mine == {used}
        assert set(_volumes(daemon, "label=tier")) & mine == mine
        assert set(_volumes(daemon, "label=tier=gold")) & mine == {used}
        assert set(_volumes(daemon, "label=solo")) & mine == {used}
        assert set(_volumes(daemon, f"name={idle[:8]}")) & mine == {idle}
        assert set(_volumes(daemon, "driver=local")) & mine == mine
        bad = daemon.docker("volume", "ls", "--filter", "colour=red")
        assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr
        missing = daemon.docker("volume", "inspect", "no-such-volume")
        assert missing.returncode != 0 and "no such volume" in missing.stderr
    finally:
        daemon.ok("rm", name)
        daemon.docker("volume", "rm", used, idle)


def test_volume_create_options_tmpfs(daemon: Daemon) -> None:
    vol = _name("v")
    daemon.ok("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs",
              "-o", "o=size=2m,uid=1000", vol)
    try:
        info = json.loads(daemon.ok("volume", "inspect", vol))[0]
        assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=2m,uid=1000"}
        out = daemon.ok("run", "--rm", "-v", f"{vol}:/t", "busybox", "sh", "-c",
                        "stat -c %u /t; grep ' /t ' /proc/mounts")
        assert out.startswith("1000\ntmpfs /t tmpfs") and "size=2048k" in out
        with open("/proc/self/mountinfo") as f:  # unmounted with its last user
            assert info["Mountpoint"] not in f.read()
        implicit = _name("v")  # made on first use with the --mount's volume-opt
        out = daemon.ok("run", "--rm", "--mount", f"type=volume,src={implicit},dst=/t,"
                        "volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=k=v",
                        "busybox", "grep", " /t ", "/proc/mounts")
        assert out.startswith("tmpfs /t tmpfs")
        info = json.loads(daemon.ok("volume", "inspect", implicit))[0]
        assert info["Options"] == {"type": "tmpfs", "device": "tmpfs"}
        assert info["Labels"] == {"k": "v"}
        daemon.ok("volume", "rm", implicit)
        bad = daemon.docker("volume", "create", "-o", "type=tmpfs", _name("v"))
        assert bad.returncode != 0 and 'missing required option: "device"' in bad.stderr
        bad = daemon.docker("volume", "create", "-o", "colour=red", _name("v"))
        assert bad.returncode != 0 and 'invalid option: "colour"' in bad.stderr
    finally:
        daemon.docker("volume", "rm", vol)


def test_volume_bind_of_host_dir_is_never_emptied(daemon: Daemon, hostdir: str) -> None:
    vol = _name("v")
    with open(os.path.join(hostdir, "precious"), "w") as f:
        f.write("keep\n")
    daemon.ok("volume", "create", "-o", "type=none", "-o", "o=bind", "-o",
              f"device={hostdir}", vol)
    assert daemon.ok("run", "--rm", "-v", f"{vol}:/d", "busybox", "cat", "/d/precious") \
        == "keep\n"
    daemon.ok("volume", "rm", vol)
    with open(os.path.join(hostdir, "precious")) as f:
        assert f.read() == "keep\n"


def test_rm_refused_while_in_use(daemon: Daemon) -> None:
    vol, name = _name("v"), _name()
    daemon.ok("create", "--name", name, "-v", f"{vol}:/d", "busybox", "true")
    cid = daemon.ok("inspect", "-f", "{{.Id}}", name).strip()
    try:
        for args in (["volume", "rm", vol], ["volume", "rm", "-f", vol]):
            result = daemon.docker(*args)
            assert result.returncode == 1
            assert f"remove {vol}: volume is in use - [{cid}]" in result.stderr
        with daemon.http() as http:
            response = http.delete(f"/v1.45/volumes/{vol}")
            assert response.status_code == 409 and "in use" in response.json()["message"]
            assert http.delete("/v1.45/volumes/no-such-volume").status_code == 404
            assert http.delete("/v1.45/volumes/no-such-volume?force=1").status_code == 204
        assert vol in _volumes(daemon)
        for by in (vol, "/d"):
            assert daemon.ok("ps", "-aq", "--no-trunc", "--filter", f"volume={by}") \
                == cid + "\n"
    finally:
        daemon.ok("rm", name)
    daemon.ok("volume", "rm", vol)  # `rm` without -v leaves named volumes; now unused
    assert vol not in _volumes(daemon)


def test_rm_v_and_auto_remove_take_anonymous_volumes_only(daemon: Daemon) -> None:
    named, name = _name("v"), _name()
    before = set(_volumes(daemon))
    daemon.ok("run", "--rm", "-v", "/anon", "-v", f"{named}:/named", "busybox", "true")
    assert set(_volumes(daemon)) - before == {named}
    daemon.ok("create", "--name", name, "-v", "/anon", "-v", f"{named}:/named", "busybox",
              "true")
    anon = set(_volumes(daemon)) - before - {named}
    assert len(anon) == 1
    daemon.ok("rm", "-v", name)
    assert set(_volumes(daemon)) - before == {named}
    # without -v the anonymous volume stays (dangling), for prune
    daemon.ok("create", "--name", name, "-v", "/anon", "busybox", "true")
    daemon.ok("rm", name)
    left = set(_volumes(daemon)) - before - {named}
    assert len(left) == 1
    daemon.ok("volume", "rm", *left, named)


def test_prune_removes_only_unused_anonymous_volumes(daemon: Daemon) -> None:
    named_idle, named_used, name, user = _name("v"), _name("v"), _name(), _name()
    daemon.ok("volume", "create", named_idle)
    daemon.ok("create", "--name", user, "-v", f"{named_used}:/d", "-v", "/anon-used",
              "busybox", "true")
    daemon.ok("create", "--name", name, "-v", "/anon-idle", "busybox", "true")
    idle_anon = json.loads(daemon.ok("inspect", "-f", "{{json .Mounts}}", name))[0]["Name"]
    daemon.ok("rm", name)
    try:
        out = daemon.ok("volume", "prune", "-f")
        assert idle_anon in out
        left = set(_volumes(daemon))
        assert idle_anon not in left
        assert {named_idle, named_used} <= left
        assert len(json.loads(daemon.ok("inspect", "-f", "{{json .Mounts}}", user))) == 2
        out = daemon.ok("volume", "prune", "-f", "--all")
        left = set(_volumes(daemon))
        assert named_idle not in left and named_used in left
    finally:
        daemon.ok("rm", "-v", user)
        daemon.docker("volume", "rm", named_used)


def test_dockerpy_volumes(docker_client: object) -> None:
    import docker

    client: docker.DockerClient = docker_client  # type: ignore[assignment]
    vol = client.volumes.create(name=_name("v"), labels={"from": "docker-py"})
    try:
        assert vol.attrs["Labels"] == {"from": "docker-py"}
        assert client.volumes.get(vol.name).attrs["Mountpoint"] == vol.attrs["Mountpoint"]
        out = client.containers.run("busybox", "sh -c 'echo py > /v/f; cat /v/f'",
                                    volumes={vol.name: {"bind": "/v", "mode": "rw"}},
                                    remove=True)
        assert out == b"py\n"
        assert vol.name in [v.name for v in client.volumes.list(filters={"dangling": True})]
    finally:
        vol.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(vol.name)


def test_bind_propagation(daemon: Daemon, hostdir: str) -> None:
    out = daemon.ok("run", "--rm", "-v", f"{hostdir}:/shared:rshared", "-v",
                    f"{hostdir}:/private", "busybox", "sh", "-c",
                    "grep -E ' /(shared|private) ' /proc/self/mountinfo")
    lines = {line.split()[4]: line for line in out.splitlines()}
    assert "shared:" in lines["/shared"]
    assert "shared:" not in lines["/private"] and "master:" not in lines["/private"]


def test_prune_by_api_version(daemon: Daemon) -> None:
    vol, mark = _name("v"), uuid.uuid4().hex
    daemon.ok("volume", "create", "--label", f"mark={mark}", vol)
    query = {"filters": json.dumps({"label": [f"mark={mark}"]})}
    with daemon.http() as http:
        response = http.post("/v1.45/volumes/prune", params=query)
        assert response.status_code == 200
        assert response.json()["VolumesDeleted"] is None  # named: kept from 1.42 on
        assert vol in _volumes(daemon)
        response = http.post("/v1.41/volumes/prune", params=query)
        assert response.json()["VolumesDeleted"] == [vol]  # older clients: every unused one
        bad = http.post("/v1.45/volumes/prune", params={"filters": '{"dangling":["true"]}'})
        assert bad.status_code == 400 and bad.json() == {"message": "invalid filter 'dangling'"}
    assert vol not in _volumes(daemon)
