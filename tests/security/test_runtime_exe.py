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
        time.sleep(1.5)
        report = engine.docker("exec", cid, "cat", "/tmp/hunt.log").stdout
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
