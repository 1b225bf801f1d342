"""CVE-2019-5736's pattern: a container overwrites the runtime's binary on the host through
/proc/<runtime pid>/exe while the runtime enters it for ``docker exec``.

A hunter in the container scans /proc without pause and tries to open, for writing, the
binary of every process that is not its own or busybox: directly, and by reopening a
read-only fd once the process has gone (no longer busy). Meanwhile the test runs execs
(as root, as another user, and of a script whose interpreter is ``/proc/self/exe``, the
CVE's way of making the runtime run itself inside). The hunter never writes a byte, so
a regression shows as a report line, not as a destroyed interpreter on the host; the
host's runtime files are hashed before and after all the same.
"""

from __future__ import annotations

import hashlib
import os
import time

from .conftest import IMAGE, Engine

HUNT_SECONDS = 6


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _hunt_report(engine: Engine, cid: str) -> str:
    """The hunter's log once it has finished: it prints "caught" at the end, which can be
    seconds past its deadline (each process it catches is held until that one exits)."""
    report = ""
    for _ in range(40):
        report = engine.docker("exec", cid, "cat", "/tmp/hunt.log").stdout
        if "caught" in report:
            break
        time.sleep(0.5)
    return report


def test_runtime_binary_cannot_be_reached_from_exec(engine: Engine) -> None:
    files = {path: _digest(path) for path in engine.runtime_files}
    inodes = {(os.stat(p).st_dev, os.stat(p).st_ino) for p in engine.runtime_files}
    cid = engine.ok("run", "-d", IMAGE, "sh", "-c",
                    "printf '#!/proc/self/exe\\n' > /evil && chmod +x /evil && "
                    "sleep 600").strip()
    try:
        engine.ok("exec", "-d", cid, "sh", "-c",
                  f"sec-helper exe-hunt {HUNT_SECONDS} > /tmp/hunt.log 2>&1")
        deadline = time.monotonic() + HUNT_SECONDS - 1
        rounds = 0
        while time.monotonic() < deadline:
            engine.docker("exec", cid, "/evil")
            engine.docker("exec", cid, "true")
            engine.docker("exec", "-u", "1000:1000", cid, "true")
            rounds += 1
        report = _hunt_report(engine, cid)
    finally:
        engine.docker("rm", "-f", cid)
    assert rounds >= 2 and "caught" in report, (engine.name, rounds, report)
    writable = [line for line in report.splitlines() if line.startswith("WRITABLE")]
    hit = [w for w in writable if (int(w.split()[2]), int(w.split()[3])) in inodes]
    assert not hit, (engine.name, report)
    readable = [line for line in report.splitlines() if line.startswith("readable")
                and os.path.realpath(line.split(maxsplit=2)[2]) in files]
    assert not readable, (engine.name, "the runtime's binary was opened from the "
                          "container", report)
    assert {path: _digest(path) for path in files} == files


# The second half: the container brings its own ld.so and libc (here the host's own
# copies, as an image would ship them), so the runtime's interpreter, once the kernel is
# made to run it inside the container through ``#!/proc/self/exe``, starts there and runs
# the container's code. That code opens its /proc/self/exe, hands the fd to a shell and
# exits; the shell, once no process of the container executes the file, writes its first
# byte back over itself through /proc/self/fd (so that even a regression changes no
# content on the host; the digests are checked all the same).
EVIL = """#!/proc/self/exe
import os
fd = os.open("/proc/self/exe", os.O_RDONLY)
os.set_inheritable(fd, True)
st = os.fstat(fd)
print("EXE", os.readlink("/proc/self/exe"), st.st_dev, st.st_ino, flush=True)
parent = os.getpid()
if os.fork() == 0:
    f = f"/proc/self/fd/{fd}"
    os.execv("/bin/sh", ["sh", "-c",
             f"while [ -e /proc/{parent} ]; do :; done; "
             f"if out=$(dd if={f} bs=1 count=1 2>/dev/null | "
             f"dd of={f} bs=1 count=1 conv=notrunc 2>&1); then echo OVERWRITE-WROTE; "
             "else echo OVERWRITE-REFUSED: $out; fi >> /tmp/overwrite.log"])
"""


def _loader_tar() -> bytes:
    """The interpreter's ld.so and libraries, and the encodings package it needs to start,
    at the paths the container's loader and the interpreter look in."""
    import encodings
    import io
    import subprocess
    import sys
    import tarfile

    exe = os.path.realpath(sys.executable)
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True, check=True).stdout
    files = [w for line in ldd.splitlines() for w in line.split() if w.startswith("/")]
    package = os.path.dirname(encodings.__file__)
    files += [os.path.join(package, n) for n in os.listdir(package) if n.endswith(".py")]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        parents = {os.path.dirname(f)[1:] for f in files}
        for d in sorted({"/".join(p.split("/")[:i + 1]) for p in parents
                         for i in range(p.count("/") + 1)}):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(path[1:])
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_runtime_interpreter_cannot_be_overwritten_from_exec(engine: Engine) -> None:
    import subprocess

    from .conftest import DOCKER

    assert DOCKER is not None
    files = {path: _digest(path) for path in engine.runtime_files}
    host = {(os.stat(p).st_dev, os.stat(p).st_ino) for p in engine.runtime_files}
    cid = engine.ok("run", "-d", IMAGE, "sleep", "600").strip()
    outputs = []
    try:
        copied = subprocess.run([DOCKER, "cp", "-", f"{cid}:/"], input=_loader_tar(),
                                capture_output=True, env=engine.env, timeout=60)
        assert copied.returncode == 0, copied.stderr
        engine.ok("exec", "-i", cid, "sh", "-c", "cat > /evil && chmod +x /evil", input=EVIL)
        engine.ok("exec", "-d", cid, "sh", "-c",
                  f"sec-helper exe-hunt {HUNT_SECONDS} > /tmp/hunt.log 2>&1")
        deadline = time.monotonic() + HUNT_SECONDS - 1
        while time.monotonic() < deadline:
            result = engine.docker("exec", cid, "/evil")
            outputs.append(result.stdout + result.stderr)
        report = _hunt_report(engine, cid)
        overwrite = engine.docker("exec", cid, "cat", "/tmp/overwrite.log").stdout
    finally:
        engine.docker("rm", "-f", cid)
    seen = [line.split() for out in outputs for line in out.splitlines()
            if line.startswith("EXE ")]
    assert len(outputs) >= 2 and "caught" in report, (engine.name, outputs, report)
    assert "OVERWRITE-WROTE" not in overwrite, (engine.name, overwrite, seen)
    if engine.name == "sampand":
        # The attack got as far as the CVE's: the interpreter ran the container's code...
        assert seen, (engine.name, outputs)
        # ...and its write was refused for what the file is (read-only, or a sealed
        # memfd), not only because another process happened to be executing it.
        refusals = [line for line in overwrite.splitlines() if "REFUSED" in line]
        assert refusals and all("Read-only file system" in r or "not permitted" in r
                                for r in refusals), (engine.name, overwrite)
        # ...from a copy that is not the host's file, and nothing could write to it.
        assert not {(int(s[2]), int(s[3])) for s in seen} & host, seen
        assert not [w for w in report.splitlines() if w.startswith("WRITABLE")], report
    writable = [line for line in report.splitlines() if line.startswith("WRITABLE")]
    assert not [w for w in writable if (int(w.split()[2]), int(w.split()[3])) in host], \
        (engine.name, report)
    assert {path: _digest(path) for path in files} == files


def test_both_protected_copies_refuse_writes() -> None:
    """The runtime's two ways to a protected interpreter (runtime/sealed.py): the overlay
    view used here, and the sealed memfd used where overlayfs cannot be mounted."""
    import errno

    from sampan.runtime import sealed

    view = sealed.overlay_view()
    copy = sealed.sealed_copy()
    try:
        assert sealed.exe_is_protected(f"/proc/self/fd/{view}")
        assert sealed.exe_is_protected(f"/proc/self/fd/{copy}")
        assert not sealed.exe_is_protected(os.path.realpath("/proc/self/exe"))
        try:
            os.open(f"/proc/self/fd/{view}", os.O_WRONLY)
            raise AssertionError("the overlay view opened for writing")
        except OSError as exc:
            assert exc.errno == errno.EROFS
        fd = os.open(f"/proc/self/fd/{copy}", os.O_WRONLY)  # a memfd opens, but...
        try:
            os.pwrite(fd, b"\0", 0)
            raise AssertionError("the sealed copy took a write")
        except PermissionError:
            pass
        finally:
            os.close(fd)
    finally:
        os.close(view)
        os.close(copy)
