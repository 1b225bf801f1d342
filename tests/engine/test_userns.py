"""--userns-remap through the real docker CLI, against a sampand of its own.

The remapping uses the existing system user ``daemon`` with a range appended to
/etc/subuid and /etc/subgid for the module; both files are put back byte for byte after.
What is checked is what a user sees: ``docker info``'s security option, the container's
root being a host id nobody owns (its processes in /proc, the files it writes in its
upper directory and volumes), the image's layers untouched and shared with a
``--userns=host`` container, and dockerd's refusals (privileged, host network).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import FIXTURES, until
from .spawn import Spawned, run_sampand, spawned

USER = "daemon"
START, SIZE = 231072, 65536
IMAGE = "busybox:latest"


@contextlib.contextmanager
def restored(*paths: str) -> Iterator[None]:
    """Put the files back exactly (content, mode, owner; or absent) whatever happens."""
    saved: dict[str, tuple[bytes, os.stat_result] | None] = {}
    for path in paths:
        try:
            saved[path] = (Path(path).read_bytes(), os.stat(path))
        except FileNotFoundError:
            saved[path] = None
    try:
        yield
    finally:
        for path, state in saved.items():
            if state is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            data, st = state
            tmp = path + ".sampan-test"
            Path(tmp).write_bytes(data)
            os.chown(tmp, st.st_uid, st.st_gid)
            os.chmod(tmp, st.st_mode & 0o7777)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(tmp, path)


@contextlib.contextmanager
def subordinate_range() -> Iterator[None]:
    with restored("/etc/subuid", "/etc/subgid"):
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a") as f:
                f.write(f"{USER}:{START}:{SIZE}\n")
        yield


@pytest.fixture(scope="module")
def remapped() -> Iterator[Spawned]:
    with subordinate_range(), spawned(["--userns-remap", USER]) as d:
        os.chmod(d.base, 0o711)  # the remapped root must reach the data root (as dockerd)
        d.start()
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield d


def inspect(d: Spawned, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(d.ok("inspect", ref))[0]


def status_ids(pid: int, key: str) -> list[int]:
    with open(f"/proc/{pid}/status") as f:
        line = next(x for x in f if x.startswith(key + ":"))
    return [int(v) for v in line.split()[1:]]


def host_pids_of(d: Spawned, cid: str) -> list[int]:
    """Every host process in the container's pid namespace."""
    pid = inspect(d, cid)["State"]["Pid"]
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    out.append(int(entry))
    return out


def test_info_names_userns(remapped: Spawned) -> None:
    options = json.loads(remapped.ok("info", "--format", "{{json .SecurityOptions}}"))
    assert "name=userns" in options, options


def test_container_root_is_the_remapped_range(remapped: Spawned) -> None:
    d = remapped
    cid = d.ok("run", "-d", IMAGE, "sh", "-c",
               "echo made > /made && mkdir -p /dir/sub && echo extra >> /etc/passwd && "
               "sleep 600").strip()
    try:
        until(lambda: d.docker("exec", cid, "test", "-e", "/dir/sub").returncode == 0)
        # Inside: root, the image's files root's, the map docker shows in /proc.
        assert d.ok("exec", cid, "id", "-u").strip() == "0"
        assert d.ok("exec", cid, "stat", "-c", "%u:%g", "/bin/busybox", "/etc").split() == \
            ["0:0", "0:0"]
        assert d.ok("exec", cid, "cat", "/proc/self/uid_map").split() == \
            ["0", str(START), str(SIZE)]
        # On the host: the processes (init and an exec's) run as the range's ids.
        d.ok("exec", "-d", cid, "sleep", "600")
        d.ok("exec", "-d", "-u", "1000:1000", cid, "sleep", "600")
        until(lambda: len(host_pids_of(d, cid)) >= 3)
        uids = {status_ids(p, "Uid")[0] for p in host_pids_of(d, cid)}
        gids = {status_ids(p, "Gid")[0] for p in host_pids_of(d, cid)}
        assert uids == {START, START + 1000}, uids
        assert gids == {START, START + 1000}, gids
        # What it wrote (new files, a copied-up one) is the range's in its upper directory.
        graph = inspect(d, cid)["GraphDriver"]["Data"]
        upper = Path(graph["UpperDir"])
        for name in ("made", "dir", "dir/sub", "etc/passwd"):
            st = os.lstat(upper / name)
            assert (st.st_uid, st.st_gid) == (START, START), (name, st)
        # The image's layers are shared, not copied or chowned.
        lowers = [Path(p) for p in graph["LowerDir"].split(":")]
        layer = next(p for p in lowers if (p / "etc" / "passwd").exists())
        st = os.stat(layer / "etc" / "passwd")
        assert (st.st_uid, st.st_gid) == (0, 0)
        assert b"extra" not in (layer / "etc" / "passwd").read_bytes()
    finally:
        d.docker("rm", "-f", cid)


def test_userns_host_opts_out_and_shares_the_image(remapped: Spawned) -> None:
    d = remapped
    cid = d.ok("run", "-d", "--userns=host", IMAGE, "sh", "-c",
               "echo made > /made && sleep 600").strip()
    try:
        until(lambda: d.docker("exec", cid, "test", "-e", "/made").returncode == 0)
        assert d.ok("exec", cid, "stat", "-c", "%u", "/bin/busybox").strip() == "0"
        assert d.ok("exec", cid, "cat", "/proc/self/uid_map").split() == \
            ["0", "0", "4294967295"]
        pid = inspect(d, cid)["State"]["Pid"]
        assert status_ids(pid, "Uid")[0] == 0
        graph = inspect(d, cid)["GraphDriver"]["Data"]
        assert os.stat(Path(graph["UpperDir"]) / "made").st_uid == 0
    finally:
        d.docker("rm", "-f", cid)


def test_volume_is_the_remapped_roots(remapped: Spawned) -> None:
    d = remapped
    name = f"userns-vol-{os.getpid()}"
    try:
        out = d.ok("run", "--rm", "-v", f"{name}:/data", IMAGE, "sh", "-c",
                   "echo x > /data/f && mkdir /data/d && stat -c %u /data/f")
        assert out.strip() == "0"
        mountpoint = Path(json.loads(d.ok("volume", "inspect", name))[0]["Mountpoint"])
        for entry in (mountpoint, mountpoint / "f", mountpoint / "d"):
            st = os.lstat(entry)
            assert (st.st_uid, st.st_gid) == (START, START), (entry, st)
        # /etc/hosts and the like are the container's root's to write, as in dockerd.
        d.ok("run", "--rm", IMAGE, "sh", "-c", "echo 10.9.9.9 extra >> /etc/hosts")
    finally:
        d.docker("volume", "rm", "-f", name)


def test_refusals_as_dockerd(remapped: Spawned) -> None:
    d = remapped
    result = d.docker("run", "--rm", "--privileged", IMAGE, "true")
    assert result.returncode == 125
    assert "privileged mode is incompatible with user namespaces.  You must run the " \
        "container in the host namespace when running privileged mode" in result.stderr
    result = d.docker("run", "--rm", "--network", "host", IMAGE, "true")
    assert result.returncode == 125
    assert "cannot share the host's network namespace when user namespaces are enabled" \
        in result.stderr
    assert d.docker("ps", "-aq").stdout.strip() == ""  # nothing was created
    # Opting out makes both possible.
    out = d.ok("run", "--rm", "--privileged", "--userns=host", IMAGE, "cat",
               "/proc/self/uid_map")
    assert out.split() == ["0", "0", "4294967295"]
    d.ok("run", "--rm", "--network", "host", "--userns=host", IMAGE, "true")


def test_the_container_cannot_act_as_host_root(remapped: Spawned) -> None:
    """Its root owns nothing of the host's: a bind-mounted host file owned by root stays
    read-only to it, whatever its capabilities inside."""
    d = remapped
    probe = Path(d.base) / "host-file"
    probe.write_text("host\n")
    os.chmod(probe, 0o644)
    result = d.docker("run", "--rm", "-v", f"{probe}:/host-file", IMAGE, "sh", "-c",
                      "echo owned >> /host-file")
    assert result.returncode != 0
    assert "Permission denied" in result.stderr or "Read-only" in result.stderr
    assert probe.read_text() == "host\n"
    assert d.ok("run", "--rm", "-v", f"{probe}:/host-file", IMAGE, "stat", "-c", "%u",
                "/host-file").strip() == "65534"  # the host's root is nobody inside


def test_a_user_without_ranges_is_refused(tmp_path: Path) -> None:
    result = run_sampand("--userns-remap", "root", "--data-root", str(tmp_path / "d"),
                         "--exec-root", str(tmp_path / "e"), "-H",
                         f"unix://{tmp_path}/s.sock")
    assert result.returncode == 1
    assert "userns-remap: no subordinate uid ranges found for user 'root' in /etc/subuid" \
        in result.stderr


def test_exec_and_restart_keep_the_mapping(remapped: Spawned) -> None:
    d = remapped
    cid = d.ok("run", "-d", IMAGE, "sleep", "600").strip()
    try:
        d.ok("restart", "-t", "1", cid)
        pid = inspect(d, cid)["State"]["Pid"]
        assert status_ids(pid, "Uid")[0] == START
        assert d.ok("exec", cid, "sh", "-c", "echo hi > /f && cat /f").strip() == "hi"
        proc = subprocess.run(["findmnt", "-rn", "-o", "FSTYPE",
                               inspect(d, cid)["GraphDriver"]["Data"]["MergedDir"]],
                              capture_output=True, text=True)
        assert proc.stdout.strip() == "overlay"
    finally:
        d.docker("rm", "-f", cid)


def test_commit_and_build_write_the_containers_ids(remapped: Spawned,
                                                   tmp_path: Path) -> None:
    """The writable layer holds host ids; the layers made from it (commit, a build's RUN)
    carry the container's, as with dockerd, so the image means the same anywhere."""
    d = remapped
    tag = f"userns-commit-{os.getpid()}"
    cid = d.ok("run", "-d", IMAGE, "sh", "-c",
               "echo made > /made && chown 1000:1000 /made && mkdir /own && sleep 600").strip()
    try:
        until(lambda: d.docker("exec", cid, "test", "-d", "/own").returncode == 0)
        d.ok("commit", cid, tag)
    finally:
        d.docker("rm", "-f", cid)
    (tmp_path / "Dockerfile").write_text(f"FROM {tag}\nRUN echo built > /built\n")
    built = subprocess.run(["docker", "build", "-q", "-t", tag + "-built", str(tmp_path)],
                           capture_output=True, text=True, timeout=120,
                           env={**d.env, "DOCKER_BUILDKIT": "0"})
    assert built.returncode == 0, built.stderr
    try:
        # Without the remapping the image's files are root's (and 1000's), not the range's.
        out = d.ok("run", "--rm", "--userns=host", tag + "-built", "stat", "-c", "%u:%g",
                   "/made", "/own", "/built")
        assert out.split() == ["1000:1000", "0:0", "0:0"], out
        out = d.ok("run", "--rm", tag + "-built", "stat", "-c", "%u:%g", "/made", "/built")
        assert out.split() == ["1000:1000", "0:0"], out
    finally:
        d.docker("rmi", "-f", tag + "-built", tag)


# What useradd and usermod may write, put back byte for byte after the ``default`` test.
ACCOUNT_FILES = [f"/etc/{name}{suffix}" for name in ("passwd", "shadow", "group", "gshadow",
                                                     "subuid", "subgid")
                 for suffix in ("", "-")] + ["/etc/.pwd.lock", "/var/log/lastlog",
                                             "/var/log/faillog"]


def test_default_makes_dockremap_as_dockerd() -> None:
    """``--userns-remap default``: the system user dockremap and a 65536-id range after
    the ranges already given out, then containers in that range."""
    with restored(*ACCOUNT_FILES):
        existing = [tuple(int(v) for v in line.split(":")[1:3])
                    for line in Path("/etc/subuid").read_text().splitlines()
                    if line.count(":") == 2 and not line.startswith("dockremap:")]
        had_user = any(line.startswith("dockremap:")
                       for line in Path("/etc/passwd").read_text().splitlines())
        with spawned(["--userns-remap", "default"]) as d:
            os.chmod(d.base, 0o711)
            d.start()
            entry = pwd.getpwnam("dockremap")
            assert entry.pw_shell == "/bin/false" and entry.pw_uid < 1000
            ranges = {path: [line for line in Path(path).read_text().splitlines()
                             if line.startswith("dockremap:")]
                      for path in ("/etc/subuid", "/etc/subgid")}
            start = int(ranges["/etc/subuid"][0].split(":")[1])
            if not had_user:
                assert start == max([100000, *(s + c for s, c in existing)])
                assert ranges["/etc/subuid"] == [f"dockremap:{start}:65536"], ranges
            d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
            out = d.ok("run", "--rm", IMAGE, "cat", "/proc/self/uid_map")
            assert out.split() == ["0", str(start), "65536"]
            assert "name=userns" in d.ok("info", "--format", "{{json .SecurityOptions}}")
    assert had_user or "dockremap" not in Path("/etc/passwd").read_text()
