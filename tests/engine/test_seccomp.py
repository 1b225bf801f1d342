"""Docker's default seccomp profile and SecurityOpt, seen from inside containers.

The outcomes are docker's documented ones for its default profile: unshare, mount and the
keyring calls are refused (EPERM), namespace flags to clone are refused, clone3 answers
ENOSYS; a custom profile in docker's format is applied as given, ``unconfined`` and
``--privileged`` run without a filter, ``no-new-privileges`` sets NoNewPrivs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampan.kernel import seccomp as kseccomp
from sampan.oci.decode import decode
from sampan.oci.defaults import DOCKER_DEFAULT_CAPS
from sampan.oci.spec import Seccomp
from sampan.security import seccomp
from sampan.security.options import SecurityDefaults, parse_security_opt, seccomp_for

from .conftest import Daemon


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sampan-seccomp-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def names(spec: dict[str, Any], action: str = "SCMP_ACT_ALLOW",
          unconditional: bool = True) -> set[str]:
    return {n for rule in spec["syscalls"] if rule["action"] == action
            and (not unconditional or not rule.get("args")) for n in rule["names"]}


# The profile and its conversion ---------------------------------------------------------------

def test_profile_is_moby_default() -> None:
    profile = seccomp.default_profile()
    assert profile.default_action == "SCMP_ACT_ERRNO" and profile.default_errno_ret == 1
    first = profile.syscalls[0] if profile.syscalls else None
    assert first is not None and first.names is not None and len(first.names) == 349
    assert {"mkdir", "openat", "execve", "io_uring_setup", "landlock_create_ruleset"} <= \
        set(first.names)
    assert not {"mount", "unshare", "add_key", "keyctl", "kexec_load", "init_module",
                "clone", "clone3", "ptrace", "reboot"} & set(first.names)


def test_conversion_by_capabilities_and_arch() -> None:
    default = seccomp.to_spec(seccomp.default_profile(), list(DOCKER_DEFAULT_CAPS), "amd64")
    assert default is not None
    assert default["defaultAction"] == "SCMP_ACT_ERRNO" and default["defaultErrnoRet"] == 1
    assert default["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = names(default)
    assert {"arch_prctl", "modify_ldt", "chroot", "ptrace"} <= allowed  # arch, cap, minKernel
    assert not {"mount", "unshare", "setns", "bpf", "add_key", "reboot", "s390_runtime_instr",
                "arm_fadvise64_64"} & allowed
    clone = [r for r in default["syscalls"] if r["names"] == ["clone"]]
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in \
        default["syscalls"]
    assert sorted(r["args"][0]["value"] for r in default["syscalls"]
                  if r["names"] == ["personality"]) == [0, 8, 131072, 131080, 4294967295]
    admin = seccomp.to_spec(seccomp.default_profile(),
                            [*DOCKER_DEFAULT_CAPS, "CAP_SYS_ADMIN"], "amd64")
    assert admin is not None
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= names(admin)
    assert not any(r.get("args") for r in admin["syscalls"] if r["names"] == ["clone"])
    s390 = seccomp.to_spec(seccomp.default_profile(), list(DOCKER_DEFAULT_CAPS), "s390x")
    assert s390 is not None and s390["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    assert [r["args"][0]["index"] for r in s390["syscalls"] if r["names"] == ["clone"]] == [1]


def test_security_opt_parsing() -> None:
    assert parse_security_opt(["no-new-privileges"]).no_new_privileges is True
    assert parse_security_opt(["no-new-privileges:false"]).no_new_privileges is False
    assert parse_security_opt(["no-new-privileges=true"]).no_new_privileges is True
    assert parse_security_opt(["seccomp=unconfined"]).seccomp == "unconfined"
    for bad, message in (("bogus", 'invalid --security-opt 1: "bogus"'),
                         ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
                         ("no-new-privileges=maybe",
                          'invalid --security-opt 2: "no-new-privileges=maybe"'),
                         ("seccomp={bad", "Decoding seccomp profile failed")):
        with pytest.raises(ValueError, match=message.replace("{", r"\{")):
            parse_security_opt([bad])
    opts = parse_security_opt([])
    assert seccomp_for(opts, SecurityDefaults(), True, list(DOCKER_DEFAULT_CAPS)) is None
    assert seccomp_for(opts, SecurityDefaults(seccomp="unconfined"), False, []) is None


def test_runtime_compiles_the_profile_quickly() -> None:
    """The runtime's whole seccomp set-up (decode, validate, libseccomp build) for the full
    default profile; printed for the README, bounded to catch regressions."""
    spec = seccomp.to_spec(seccomp.default_profile(), list(DOCKER_DEFAULT_CAPS))
    times = []
    for _ in range(20):
        start = time.perf_counter()
        filt = kseccomp.compile(decode(Seccomp, spec))
        bpf = filt.export_bpf()
        filt.release()
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    print(f"seccomp set-up (default profile, {len(bpf) // 8} BPF instructions): "
          f"median {median * 1000:.2f} ms")
    assert median < 0.05


# Inside containers -------------------------------------------------------------------------

def status(daemon: Daemon, *args: str) -> dict[str, str]:
    out = daemon.ok("run", "--rm", *args, "busybox", "cat", "/proc/self/status")
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_default_container_is_filtered(daemon: Daemon) -> None:
    st = status(daemon)
    assert st["Seccomp"].strip() == "2" and st["NoNewPrivs"].strip() == "0"
    result = daemon.docker("run", "--rm", "busybox", "unshare", "-U", "true")
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr + result.stdout
    # mount is not in the allow-list (busybox words EPERM as "permission denied").
    result = daemon.docker("run", "--rm", "busybox", "mount", "-t", "tmpfs", "t", "/tmp")
    assert result.returncode != 0
    assert "permission denied" in result.stderr + result.stdout
    # Plain process creation still works (clone without namespace flags).
    assert daemon.ok("run", "--rm", "busybox", "sh", "-c", "echo $(echo nested)").strip() == \
        "nested"


def test_cap_sys_admin_widens_the_filter(daemon: Daemon) -> None:
    out = daemon.ok("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                    "mkdir -p /m && mount -t tmpfs t /m && echo mounted")
    assert out.strip() == "mounted"


def test_privileged_and_unconfined_have_no_filter(daemon: Daemon) -> None:
    assert status(daemon, "--privileged")["Seccomp"].strip() == "0"
    assert status(daemon, "--security-opt", "seccomp=unconfined")["Seccomp"].strip() == "0"


def test_no_new_privileges(daemon: Daemon) -> None:
    assert status(daemon, "--security-opt", "no-new-privileges")["NoNewPrivs"].strip() == "1"
    assert status(daemon, "--security-opt", "no-new-privileges:true")["NoNewPrivs"].strip() \
        == "1"
    assert status(daemon, "--security-opt", "no-new-privileges=false")["NoNewPrivs"].strip() \
        == "0"


def test_custom_profile_blocks_mkdir(daemon: Daemon, tmp: Path) -> None:
    with open(seccomp.DEFAULT_PROFILE) as f:
        profile = json.load(f)
    profile["syscalls"][0]["names"] = [n for n in profile["syscalls"][0]["names"]
                                       if n not in ("mkdir", "mkdirat")]
    path = tmp / "no-mkdir.json"
    path.write_text(json.dumps(profile))
    result = daemon.docker("run", "--rm", "--security-opt", f"seccomp={path}", "busybox",
                           "mkdir", "/tmp/x")
    assert result.returncode == 1
    assert "Operation not permitted" in result.stderr
    out = daemon.ok("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh",
                    "-c", "mkdir /tmp/x && echo made")
    assert out.strip() == "made"
    assert daemon.ok("run", "--rm", "busybox", "sh", "-c", "mkdir /tmp/x && echo made") \
        .strip() == "made"
    # An errno of the profile's choosing, as docker passes errnoRet through.
    profile["syscalls"].append({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                "errnoRet": 28})
    path.write_text(json.dumps(profile))
    result = daemon.docker("run", "--rm", "--security-opt", f"seccomp={path}", "busybox",
                           "mkdir", "/tmp/x")
    assert "No space left on device" in result.stderr


def test_bad_security_opt_is_refused(daemon: Daemon, tmp: Path) -> None:
    before = daemon.ok("ps", "-aq")
    result = daemon.docker("run", "--rm", "--security-opt", "foo=bar", "busybox", "true")
    assert result.returncode == 125
    assert 'invalid --security-opt 2: \\"foo=bar\\"' in result.stderr or \
        'invalid --security-opt 2: "foo=bar"' in result.stderr
    bad = tmp / "bad.json"
    bad.write_text(json.dumps({"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}))
    result = daemon.docker("run", "--rm", "--security-opt", f"seccomp={bad}", "busybox", "true")
    assert result.returncode == 125
    assert "defaultAction: unknown action 'SCMP_ACT_NOPE'" in result.stderr
    with daemon.http() as http:
        response = http.post("/containers/create", json={
            "Image": "busybox", "HostConfig": {"SecurityOpt": ["seccomp=/etc/profile.json"]}})
        assert response.status_code == 400
        assert response.json()["message"].startswith("Decoding seccomp profile failed")
    assert daemon.ok("ps", "-aq") == before


def test_spec_has_the_filter(daemon: Daemon) -> None:
    cid = daemon.ok("run", "-d", "busybox", "sleep", "30").strip()
    try:
        with open(os.path.join(daemon.data_root, "containers", cid, "config.json")) as f:
            spec = json.load(f)
        assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
        assert "mount" not in names(spec["linux"]["seccomp"])
    finally:
        daemon.ok("rm", "-f", cid)


# The same probes against the real dockerd 20.10 -----------------------------------------

PROBES: list[tuple[str, ...]] = [
    ("busybox", "unshare", "-U", "true"),
    ("busybox", "unshare", "-m", "true"),
    ("busybox", "unshare", "-n", "true"),
    ("busybox", "mount", "-t", "tmpfs", "t", "/tmp"),
    ("busybox", "chroot", "/", "true"),
    ("--cap-drop", "SYS_CHROOT", "busybox", "chroot", "/", "true"),
    ("--cap-add", "SYS_ADMIN", "busybox", "unshare", "-m", "true"),
    ("busybox", "grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"),
    ("--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs",
     "/proc/self/status"),
    ("--security-opt", "seccomp=unconfined", "busybox", "grep", "^Seccomp:",
     "/proc/self/status"),
    # (--privileged is left out: on this VM, whose bounding set lacks CAP_SYS_RESOURCE,
    # dockerd 20.10 asks runc for every capability and fails; sampan gives the ones it has.)
]


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Daemon]:
    """Debian's dockerd 20.10 on its own socket, data root and exec root (no networking)."""
    from .conftest import remove_leftovers

    binary = shutil.which("dockerd")
    if binary is None:
        pytest.skip("dockerd is not installed")
    import subprocess

    base = tempfile.mkdtemp(prefix="sampan-peer-")
    d = Daemon(base)
    d.cgroup_parent = f"/sampan-peer-{os.getpid()}"
    with open(d.log, "ab") as log:
        d.proc = subprocess.Popen(
            [binary, "-H", d.host, "--data-root", d.data_root, "--exec-root", d.exec_root,
             "--pidfile", os.path.join(base, "pid"), "--bridge=none", "--iptables=false",
             "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
             "--cgroup-parent", d.cgroup_parent], stdout=log, stderr=log,
            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while d.docker("version").returncode != 0:
            assert time.monotonic() < deadline, d.log_text()
            assert d.proc.poll() is None, d.log_text()
            time.sleep(0.5)
        from .conftest import FIXTURES

        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        yield d
    finally:
        with contextlib.suppress(Exception):
            ids = d.docker("ps", "-aq").stdout.split()
            if ids:
                d.docker("rm", "-f", *ids)
        if d.proc.poll() is None:
            d.proc.terminate()
            try:
                d.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
        time.sleep(1)
        remove_leftovers(d)  # its containerd and shims, mounts, cgroups and directory


@pytest.mark.peers
def test_same_outcomes_as_dockerd(daemon: Daemon, dockerd: Daemon, tmp: Path) -> None:
    with open(seccomp.DEFAULT_PROFILE) as f:
        profile = json.load(f)
    profile["syscalls"][0]["names"].remove("mkdir")
    custom = tmp / "no-mkdir.json"
    custom.write_text(json.dumps(profile))
    probes = [*PROBES, ("--security-opt", f"seccomp={custom}", "busybox", "mkdir", "/x")]
    for probe in probes:
        ours = daemon.docker("run", "--rm", "--network", "none", *probe)
        theirs = dockerd.docker("run", "--rm", "--network", "none", *probe)
        assert (ours.returncode, ours.stdout, ours.stderr) == \
            (theirs.returncode, theirs.stdout, theirs.stderr), probe


def test_filter_on_the_kernel() -> None:
    """The default profile as the runtime compiles it, loaded in a forked child: the calls
    docker's profile refuses fail with its errnos (keyring calls EPERM, clone3 ENOSYS,
    user namespaces EPERM, odd personalities EPERM), ordinary ones work."""
    import ctypes
    import errno

    spec = seccomp.to_spec(seccomp.default_profile(), list(DOCKER_DEFAULT_CAPS))
    filt = kseccomp.compile(decode(Seccomp, spec))
    lib = ctypes.CDLL(None, use_errno=True)
    resolve = ctypes.CDLL("libseccomp.so.2").seccomp_syscall_resolve_name
    resolve.argtypes = [ctypes.c_char_p]

    def call(name: str, *args: int | bytes | None) -> int:
        ctypes.set_errno(0)
        rc = lib.syscall(resolve(name.encode()), *args)
        return 0 if rc >= 0 else ctypes.get_errno()

    probes = {
        "add_key": (b"user", b"sampan", b"x", 1, -3),  # KEY_SPEC_PROCESS_KEYRING
        "keyctl": (0, -3, 0),  # KEYCTL_GET_KEYRING_ID
        "request_key": (b"user", b"sampan", None, 0),
        "clone3": (None, 0),
        "unshare": (0x10000000,),  # CLONE_NEWUSER
        "personality": (0x0400000,),  # READ_IMPLIES_EXEC
        "kexec_load": (0, 0, None, 0),
        "getpid": (),
    }
    expected = {"add_key": errno.EPERM, "keyctl": errno.EPERM, "request_key": errno.EPERM,
                "clone3": errno.ENOSYS, "unshare": errno.EPERM, "personality": errno.EPERM,
                "kexec_load": errno.EPERM, "getpid": 0}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            filt.load()
            results = {name: call(name, *args) for name, args in probes.items()}
            os.write(write, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    filt.release()
    assert json.loads(data) == expected
