"""What a process inside a sampan container sees: namespaces, mounts, devices, TTY."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from .helpers import Bundle, Runtime, read_until


def _out(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_namespaces_are_new(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["namespaces"].append({"type": "cgroup"})
    bundle.set_args("sh", "-c", "echo $$; for n in net ipc uts mnt cgroup; do "
                    "readlink /proc/self/ns/$n; done")
    lines = _out(sampan.run(bundle)).split()
    assert lines[0] == "1"  # PID 1 of its own PID namespace
    host = [os.readlink(f"/proc/self/ns/{n}") for n in ("net", "ipc", "uts", "mnt", "cgroup")]
    assert all(a != b for a, b in zip(lines[1:], host, strict=True))


def test_network_namespace_has_loopback_up(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sh", "-c", "ip -o link; ip -o addr show lo")
    out = _out(sampan.run(bundle))
    assert out.count(": ") >= 1 and "lo:" in out and "UP" in out
    assert "127.0.0.1/8" in out
    assert "eth" not in out


def test_user_namespace_maps_ids(sampan: Runtime, bundle: Bundle) -> None:
    # The mapped root (100000 on the host) must be able to reach the rootfs.
    for parent in list(reversed(Path(bundle.rootfs).parents))[2:]:
        parent.chmod(parent.stat().st_mode | 0o111)
    os.chown(bundle.rootfs, 100000, 100000)
    for dirpath, dirnames, filenames in os.walk(bundle.rootfs):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), 100000, 100000)
    linux = bundle.spec["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.set_args("sh", "-c", "id -u; cat /proc/self/uid_map; sleep 30")
    bundle.write()
    assert sampan("run", "-d", "--bundle", bundle.path, bundle.id).returncode == 0
    pid = sampan.state(bundle.id)["pid"]
    with open(f"/proc/{pid}/status") as f:
        uid_line = next(line for line in f if line.startswith("Uid:"))
    assert uid_line.split()[1] == "100000"  # root inside is 100000 outside
    inside = _out(sampan("exec", bundle.id, "sh", "-c", "id -u; cat /proc/self/uid_map"))
    assert inside.split() == ["0", "0", "100000", "65536"]


def test_time_namespace_offsets(sampan: Runtime, bundle: Bundle) -> None:
    linux = bundle.spec["linux"]
    linux["namespaces"].append({"type": "time"})
    linux["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    bundle.set_args("cat", "/proc/uptime")
    uptime_inside = float(_out(sampan.run(bundle)).split()[0])
    with open("/proc/uptime") as f:
        uptime_host = float(f.read().split()[0])
    assert uptime_inside - uptime_host > 86400 * 364


def test_joining_an_existing_namespace_by_path(sampan: Runtime, bundle: Bundle,
                                               tmp_path) -> None:
    holder = subprocess.Popen(["unshare", "--uts", "sh", "-c",
                               "hostname shared-uts; echo ok; sleep 30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ok\n"
        child = subprocess.run(["pgrep", "-P", str(holder.pid)], capture_output=True,
                               text=True).stdout.split()
        ns_pid = int(child[0]) if child else holder.pid
        linux = bundle.spec["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "uts"]
        linux["namespaces"].append({"type": "uts", "path": f"/proc/{ns_pid}/ns/uts"})
        bundle.spec.pop("hostname", None)
        bundle.set_args("hostname")
        assert _out(sampan.run(bundle)) == "shared-uts\n"
    finally:
        holder.kill()
        holder.wait()


def test_readonly_root_and_tmpfs_mount(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["root"]["readonly"] = True
    bundle.spec["mounts"].append({"destination": "/scratch", "type": "tmpfs",
                                  "source": "tmpfs", "options": ["size=1m", "mode=1777"]})
    bundle.set_args("sh", "-c", "touch /x 2>&1; echo data > /scratch/f && cat /scratch/f; "
                    "dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>&1; true")
    out = _out(sampan.run(bundle))
    assert "Read-only file system" in out
    assert "data" in out
    assert "No space left on device" in out


def test_bind_mounts_ro_and_rw(sampan: Runtime, bundle: Bundle, tmp_path) -> None:
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "file").write_text("host-data")
    bundle.spec["mounts"] += [
        {"destination": "/data/rw", "type": "bind", "source": str(rw), "options": ["rbind"]},
        {"destination": "/data/ro", "type": "bind", "source": str(ro),
         "options": ["bind", "ro", "nosuid", "nodev"]},
    ]
    bundle.set_args("sh", "-c", "echo written > /data/rw/out; cat /data/ro/file; echo; "
                    "echo x > /data/ro/new 2>&1 || echo refused")
    out = _out(sampan.run(bundle))
    assert "host-data" in out and "refused" in out
    assert (rw / "out").read_text() == "written\n"
    assert not (ro / "new").exists()


def test_mount_target_symlink_cannot_escape(sampan: Runtime, bundle: Bundle,
                                            tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    # An absolute symlink in the image must resolve inside the rootfs, not on the host.
    os.symlink(str(outside), os.path.join(bundle.rootfs, "evil"))
    bundle.spec["mounts"].append({"destination": "/evil/sub", "type": "tmpfs",
                                  "source": "tmpfs"})
    bundle.set_args("sh", "-c", "touch /evil/sub/inside && echo ok")
    assert _out(sampan.run(bundle)) == "ok\n"
    assert list(outside.iterdir()) == []
    assert os.path.isdir(os.path.join(bundle.rootfs, str(outside).lstrip("/"), "sub"))


def test_default_devices_and_symlinks(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["linux"]["devices"] = [
        {"type": "c", "path": "/dev/fuse-like", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 0, "gid": 0}]
    bundle.set_args("sh", "-c", "ls -l /dev/null /dev/zero /dev/full /dev/random "
                    "/dev/urandom /dev/tty /dev/fuse-like | awk '{print $1, $5 $6, $NF}'; "
                    "for l in fd stdin ptmx; do readlink /dev/$l; done; "
                    "echo hi > /dev/null && echo w")
    out = _out(sampan.run(bundle)).splitlines()
    assert "crw-rw-rw- 1,3 /dev/null" in out
    assert "crw-r----- 1,3 /dev/fuse-like" in out
    assert "crw-rw-rw- 5,0 /dev/tty" in out
    assert "/proc/self/fd" in out and "/proc/self/fd/0" in out and "pts/ptmx" in out
    assert out[-1] == "w"


def test_sysctl_and_hostname_domainname(sampan: Runtime, bundle: Bundle) -> None:
    bundle.spec["hostname"] = "box"
    bundle.spec["domainname"] = "example.test"
    bundle.spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"}
    bundle.set_args("sh", "-c", "hostname; cat /proc/sys/kernel/domainname "
                    "/proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    assert _out(sampan.run(bundle)).split() == ["box", "example.test", "1", "4096"]
    with open("/proc/sys/kernel/hostname") as f:
        assert f.read().strip() != "box"


def test_no_pivot(sampan: Runtime, bundle: Bundle) -> None:
    bundle.set_args("sh", "-c", "cat /etc/passwd | head -1; ls /")
    bundle.write()
    result = sampan("run", "--no-pivot", "--bundle", bundle.path, bundle.id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("root:x:0:0")
    assert "busybox" not in result.stdout.split()  # / is the bundle's rootfs


def _recv_pty(listener: socket.socket, box: list[int]) -> None:
    conn, _ = listener.accept()
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        box.extend(fds)


def test_console_socket_gets_a_working_pty(sampan: Runtime, bundle: Bundle,
                                           tmp_path) -> None:
    sock_path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    fds: list[int] = []
    thread = threading.Thread(target=_recv_pty, args=(listener, fds))
    thread.start()
    bundle.spec["process"]["terminal"] = True
    bundle.spec["process"]["consoleSize"] = {"height": 33, "width": 101}
    bundle.set_args("sh")
    bundle.write()
    try:
        result = sampan("create", "--bundle", bundle.path, "--console-socket", sock_path,
                        bundle.id)
        assert result.returncode == 0, result.stderr
        thread.join(10)
        assert len(fds) == 1
        master = fds[0]
        assert sampan("start", bundle.id).returncode == 0
        os.write(master, b"stty size; tty; echo marker-$((6*7))\n")
        data = read_until(master, b"marker-42")
        assert b"33 101" in data
        assert b"/dev/pts/0" in data
        assert b"marker-42" in data
        os.write(master, b"exit 5\n")
        deadline = time.monotonic() + 10
        while sampan.state(bundle.id)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sampan.state(bundle.id)["status"] == "stopped"
        os.close(master)
    finally:
        listener.close()


def test_terminal_without_console_socket_is_refused_for_create(sampan: Runtime,
                                                               bundle: Bundle) -> None:
    bundle.spec["process"]["terminal"] = True
    bundle.write()
    result = sampan("create", "--bundle", bundle.path, bundle.id)
    assert result.returncode != 0 and "console-socket" in result.stderr
    assert os.listdir(sampan.root) == []


def test_foreground_run_with_tty(sampan: Runtime, bundle: Bundle) -> None:
    import pty

    bundle.spec["process"]["terminal"] = True
    bundle.set_args("sh", "-c", "tty; stty size")
    bundle.write()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sampan.binary, [sampan.binary, "--root", sampan.root, "run", "--bundle",
                                 bundle.path, bundle.id])
    data = read_until(fd, b"\n", timeout=10)
    data += read_until(fd, b"EOF-never", timeout=1)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, data
    assert b"/dev/pts/0" in data
