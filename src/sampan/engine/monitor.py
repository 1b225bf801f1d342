"""The per-container monitor: sampan's own (``--monitor=sampan``, the default: forked warm by
``zygote.py``, see ``sampan/warm/monitor.py``) or conmon, as podman drives it. Both keep
conmon's files and formats, so the rest of the engine treats them alike.

conmon runs ``<runtime> create`` (with a console socket for a TTY), holds the container's
stdio, writes its output to a k8s-file journal (``logs`` turns it into docker's json-file),
serves an attach socket, notes OOM kills and, when the container exits, writes the exit
code to ``<exit-dir>/<id>`` and exits itself. It is double-forked and in its own session,
so containers keep running when sampand dies; a restarted sampand finds the conmon again
by pid and start time (``alive``). It costs about 2 MB of RSS per container.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import subprocess
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import EngineError, InvalidParameter
from .record import Monitor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .zygote import Zygote

SYNC_TIMEOUT = 60.0
REAP_TIMEOUT = 10.0
# Runtime errors caused by the container's configuration: Docker answers them with a 400.
_USER_ERRORS = ("executable file not found", "no such file or directory",
                "permission denied")
# Stream tags of conmon's attach socket (SOCK_SEQPACKET): each packet is one tag + data.
ATTACH_STDOUT, ATTACH_STDERR = 2, 3


@dataclass
class MonitorConfig:
    runtime: str  # the OCI runtime binary (runc's CLI)
    runtime_root: str  # its --root: where it keeps container state
    exit_dir: str
    socket_dir: str  # short path: conmon links <socket_dir>/<id[:12]> to the bundle
    conmon: str = "conmon"
    runtime_args: tuple[str, ...] = ()  # daemon.json's runtimeArgs
    # "sampan": sampan's own monitor, forked warm from a zygote (used only with sampan's
    # own runtime; any other runtime still goes through conmon), or "conmon"
    kind: str = "sampan"
    zygote: Zygote | None = field(default=None, compare=False, repr=False)

    @property
    def warm(self) -> bool:
        return self.kind == "sampan" and self.zygote is not None and not self.runtime_args \
            and os.path.basename(self.runtime) == "sampan-runtime"

    def __post_init__(self) -> None:
        for path in (self.runtime_root, self.exit_dir, self.socket_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)

    def runtime_argv(self) -> list[str]:
        """conmon's --runtime-arg flags: the runtime's own arguments, then its --root."""
        out = []
        for arg in (*self.runtime_args, "--root", self.runtime_root):
            out += ["--runtime-arg", arg]
        return out

    def attach_path(self, container_id: str) -> str:
        return os.path.join(self.socket_dir, container_id[:12], "attach")

    def exit_path(self, container_id: str) -> str:
        return os.path.join(self.exit_dir, container_id)

    def winsz_path(self, bundle: str) -> str:
        return os.path.join(bundle, "winsz")


@dataclass
class Launch:
    container_id: str
    name: str
    bundle: str
    log_path: str
    tty: bool = False
    stdin: bool = False
    leave_stdin_open: bool = False
    log_size_max: int = -1  # conmon rotates (replaces) its log past this size
    logging: bool = True  # False for the ``none`` log driver
    persist_dir: str = ""  # conmon writes ``oom`` here when the kernel OOM-kills


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(monitor: Monitor) -> bool:
    """Whether the recorded conmon still runs (and is not a zombie or a reused pid)."""
    if monitor.pid <= 0 or start_time(monitor.pid) != monitor.start_time:
        return False
    try:
        with open(f"/proc/{monitor.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def launch(cfg: MonitorConfig, job: Launch) -> tuple[Monitor, int]:
    """Start conmon for a created-but-not-started container: (its monitor, container pid).

    Blocking (it waits for ``runtime create``): call it from a worker thread.
    """
    if cfg.warm:
        return _launch_warm(cfg, job)
    pidfile = os.path.join(job.bundle, "conmon.pid")
    argv = [cfg.conmon, "--api-version", "1", "-c", job.container_id,
            "-u", job.container_id[:12], "-n", job.name, "-r", cfg.runtime,
            "-b", job.bundle, "-p", os.path.join(job.bundle, "pidfile"), "-P", pidfile,
            "-l", f"k8s-file:{job.log_path}" if job.logging else "none:",
            "--exit-dir", cfg.exit_dir,
            "--socket-dir-path", cfg.socket_dir, *cfg.runtime_argv(), "--log-level", "error"]
    if job.persist_dir:
        argv += ["--persist-dir", job.persist_dir]
    if job.log_size_max > 0:
        argv.append(f"--log-size-max={job.log_size_max}")
    if job.tty:
        argv.append("-t")
    if job.stdin:
        argv.append("-i")
        if job.leave_stdin_open:
            argv.append("--leave-stdin-open")
    with suppress(FileNotFoundError):
        os.unlink(cfg.exit_path(job.container_id))
    read_end, write_end = os.pipe()
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "_OCI_SYNCPIPE": str(write_end)}
        with open(os.path.join(job.bundle, "conmon.log"), "ab") as log:
            first = subprocess.Popen(argv, pass_fds=(write_end,), env=env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        os.close(write_end)
        write_end = -1
        first.wait()  # it forks the monitor and exits
        message = read_sync(read_end)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    try:
        pid = _created(message, os.path.join(job.bundle, "conmon.log"))
    except EngineError:
        with suppress(OSError, ValueError), open(pidfile) as f:
            _reap(int(f.read().strip()))
        raise
    with open(pidfile) as f:
        conmon_pid = int(f.read().strip())
    return Monitor(pid=conmon_pid, start_time=start_time(conmon_pid)), pid


def _created(message: dict[str, Any], log: str) -> int:
    """The container's pid from the monitor's answer, or the runtime's error raised."""
    pid = message.get("data", -1)
    if not isinstance(pid, int) or pid <= 0:
        detail = str(message.get("message") or "").strip() or _tail(log)
        text = f"OCI runtime create failed: {detail or 'unknown error'}"
        if any(m in detail for m in _USER_ERRORS):
            raise InvalidParameter(text)  # the CLI maps these to exit codes 126 and 127
        raise EngineError(text)
    return pid


def _launch_warm(cfg: MonitorConfig, job: Launch) -> tuple[Monitor, int]:
    """``launch`` through sampan's own monitor, forked by the zygote."""
    assert cfg.zygote is not None
    with suppress(FileNotFoundError):
        os.unlink(cfg.exit_path(job.container_id))
    request = {**asdict(job), "id": job.container_id, "runtime_root": cfg.runtime_root,
               "exit_dir": cfg.exit_dir, "socket_dir": cfg.socket_dir}
    read_end, write_end = os.pipe()
    try:
        cfg.zygote.launch(request, write_end)
        os.close(write_end)
        write_end = -1
        message = read_sync(read_end)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    mon = int(message.get("monitor", 0))
    try:
        pid = _created(message, "")
    except EngineError:
        _reap(mon)
        raise
    return Monitor(pid=mon, start_time=start_time(mon)), pid


def _reap(pid: int) -> None:
    """Wait for a monitor that reported a failed create: sampand, the subreaper, is its
    parent, and nobody watches it (a zombie per failed ``run`` otherwise)."""
    if pid <= 0:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        select.select([pidfd], [], [], REAP_TIMEOUT)  # it exits right after its report
        with suppress(ChildProcessError, OSError):
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    finally:
        os.close(pidfd)


def read_sync(fd: int, timeout: float | None = SYNC_TIMEOUT) -> dict[str, Any]:
    """One JSON message conmon wrote on a sync pipe ({"data": pid or exit code})."""
    # Byte by byte: in exec mode conmon writes the pid and then the exit code on the same
    # pipe, and a quick process's two lines can arrive together; reading past the first
    # newline would swallow the exit code.
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise EngineError("the OCI runtime timed out")
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    try:
        message = json.loads(data.split(b"\n", 1)[0] or b"{}")
    except ValueError:
        return {"data": -1, "message": data.decode(errors="replace")}
    return message if isinstance(message, dict) else {"data": -1}


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-2000:]
    except OSError:
        return ""


def on_exit(pid: int, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` in the event loop when process ``pid`` exits, reaping it if it is
    our child (conmons are: sampand is their subreaper). Returns a function that cancels
    the watch. A process already gone is reported at once."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        handle = loop.call_soon(callback)
        return handle.cancel

    def fired() -> None:
        cancel()
        callback()

    def cancel() -> None:
        nonlocal pidfd
        if pidfd < 0:
            return
        loop.remove_reader(pidfd)
        with suppress(ChildProcessError, OSError):
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        os.close(pidfd)
        pidfd = -1

    loop.add_reader(pidfd, fired)
    return cancel


def read_exit_code(cfg: MonitorConfig, container_id: str) -> tuple[int, float] | None:
    """The exit code conmon recorded and when (None if it wrote none)."""
    path = cfg.exit_path(container_id)
    try:
        with open(path) as f:
            text = f.read().strip()
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    try:
        return int(text), mtime
    except ValueError:
        return None


def oom_killed(persist_dir: str) -> bool:
    """Whether conmon saw the kernel OOM-kill a process of the container (its ``oom``
    file, from the memory cgroup's events; podman reads the same file)."""
    return bool(persist_dir) and os.path.exists(os.path.join(persist_dir, "oom"))


def clear_oom(persist_dir: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(os.path.join(persist_dir, "oom"))


def clear(cfg: MonitorConfig, container_id: str) -> None:
    """Remove conmon's leftovers for a container that is gone or about to start again."""
    with suppress(FileNotFoundError):
        os.unlink(cfg.exit_path(container_id))
    link = os.path.join(cfg.socket_dir, container_id[:12])
    if os.path.islink(link):
        os.unlink(link)
    elif os.path.isdir(link):
        shutil.rmtree(link, ignore_errors=True)


def resize(bundle: str, height: int, width: int) -> None:
    """Tell conmon the terminal's new size (its winsz fifo takes "<height> <width>")."""
    path = os.path.join(bundle, "winsz")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, f"{height} {width}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)
