"""Bundles and runtime invocations shared by the runtime tests (sampan and runc alike)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

VENV_BIN = os.path.dirname(sys.executable)
SAMPAN_RUNTIME = os.path.join(VENV_BIN, "sampan-runtime")
BUSYBOX = "/bin/busybox"


def make_rootfs(path: str) -> str:
    """A minimal rootfs: static busybox with every applet linked, passwd and group."""
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin/busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(path, "bin", applet))
    with open(os.path.join(path, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    with open(os.path.join(path, "etc/group"), "w") as f:
        f.write("root:x:0:\nstaff:x:50:\nnogroup:x:65534:\n")
    return path


def default_spec() -> dict[str, Any]:
    """runc's `spec` output (sampan's copy of it), without a terminal and with a writable
    root (tests that want it read-only say so)."""
    from sampan.oci.defaults import default_spec as spec_of

    spec = spec_of()
    spec["process"]["terminal"] = False
    spec["root"]["readonly"] = False
    return spec


@dataclass
class Bundle:
    path: str
    spec: dict[str, Any]
    id: str = field(default_factory=lambda: "t" + uuid.uuid4().hex[:10])

    @property
    def rootfs(self) -> str:
        return os.path.join(self.path, "rootfs")

    def set_args(self, *args: str) -> Bundle:
        self.spec["process"]["args"] = list(args)
        return self

    def write(self) -> None:
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.spec, f)


@dataclass
class Runtime:
    """One OCI runtime binary with its own state root."""

    binary: str
    root: str

    def __call__(self, *args: str, check: bool = False, timeout: float = 60,
                 input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command; output goes through files, not pipes, because a created or
        detached container inherits the runtime's stdio and would hold a pipe open."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run([self.binary, "--root", self.root, *args], stdout=out,
                                  stderr=err, timeout=timeout, input=input,
                                  stdin=None if input is not None else subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(proc.args, proc.returncode,
                                                 out.read().decode(), err.read().decode())
        if check:
            result.check_returncode()
        return result

    def run(self, bundle: Bundle, *extra: str, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        bundle.write()
        return self("run", *extra, "--bundle", bundle.path, bundle.id, timeout=timeout)

    def state(self, cid: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self("state", cid, check=True).stdout)
        return result

    def cleanup(self, timeout: float = 30) -> None:
        """Force-delete whatever a test left in this root, again while a delete fails (a
        killed process's zombie keeps the container's cgroup busy until its reaper takes
        it), and fail the test if something is still left: that is a leak."""
        deadline = time.monotonic() + timeout
        left = self("list", "-q").stdout.split()
        while left and time.monotonic() < deadline:
            for cid in left:
                self("delete", "--force", cid)
            left = self("list", "-q").stdout.split()
        assert not left, f"containers left in {self.root}: {left}"


def read_until(fd: int, needle: bytes, timeout: float = 10) -> bytes:
    """Read a pty or pipe until ``needle`` shows up, EOF, or the timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


GREP_CPUS = ["grep", "Cpus_allowed_list", "/proc/self/status"]


def cpus_allowed(output: str) -> str:
    """The Cpus_allowed_list of GREP_CPUS's output: "0-1"."""
    line = next(x for x in output.splitlines() if x.startswith("Cpus_allowed_list:"))
    return line.split(":", 1)[1].strip()


def run_pinned(rt: Runtime, bundle: Bundle, cpus: set[int],
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`run` by a runtime started on ``cpus`` only, as `taskset` starts it."""
    bundle.write()
    return subprocess.run([rt.binary, "--root", rt.root, "run", "--bundle", bundle.path,
                           bundle.id], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout,
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))
