"""Start sampand when the CLI finds no daemon on sampan's own socket and runs as root.

The daemon is this virtualenv's sampand, detached in its own session, logging to
/var/log/sampand.log (or to the exec root when SAMPAN_EXEC_ROOT names one). Its data
root, exec root and cgroup parent come from SAMPAN_DATA_ROOT, SAMPAN_EXEC_ROOT and
SAMPAN_CGROUP_PARENT when set, so a test can run one in a temporary directory.
"""

from __future__ import annotations

import os
import sys
import time

from . import http

DEFAULT_LOG = "/var/log/sampand.log"
READY_TIMEOUT = 30.0


def daemon_command(host: str) -> list[str]:
    sampand = os.path.join(os.path.dirname(sys.executable), "sampand")
    if not os.path.exists(sampand):
        sampand = os.path.join(os.path.dirname(os.path.realpath(sys.argv[0])), "sampand")
    command = [sampand, "-H", host]
    for env, flag in (("SAMPAN_DATA_ROOT", "--data-root"), ("SAMPAN_EXEC_ROOT", "--exec-root"),
                      ("SAMPAN_CGROUP_PARENT", "--cgroup-parent")):
        if os.environ.get(env):
            command += [flag, os.environ[env]]
    return command


def log_path() -> str:
    exec_root = os.environ.get("SAMPAN_EXEC_ROOT")
    if exec_root:
        return os.path.join(exec_root, "sampand.log")
    return DEFAULT_LOG


def _ready(host: str) -> bool:
    try:
        response = http.request(host, "GET", "/_ping")
    except OSError:
        return False
    response.read()
    return response.status == 200


def start_daemon(host: str) -> None:
    """Start sampand on ``host`` and wait until it answers; raise ConnectError when we
    may not (not root, not a unix socket) or it does not come up."""
    if os.geteuid() != 0 or not host.startswith("unix://"):
        raise http.ConnectError(111, "Connection refused")
    import subprocess

    log = log_path()
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(daemon_command(host), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, start_new_session=True, close_fds=True)
    print(f"sampan: sampand was not running; started it (pid {proc.pid}, log {log})",
          file=sys.stderr)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if _ready(host):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise http.ConnectError(111, f"sampand did not come up (see {log})")
