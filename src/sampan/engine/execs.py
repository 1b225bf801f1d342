"""Exec sessions: another process in a running container, under its own conmon.

conmon's exec mode runs ``<runtime> exec --process <spec>``; for an attached session it
first serves the attach socket and waits (start pipe) until we are connected, so no output
is lost, and it reports the process's pid and, at the end, its exit code on the sync pipe.
Sessions live in memory only, as dockerd keeps them.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from ..images import ImageConfigError, resolve_user
from ..kernel import caps as kcaps
from ..oci.decode import DecodeError, decode
from .attach import Attachment, parse_detach_keys
from .containers import Containers
from .errors import Conflict, EngineError, InvalidParameter, NotFound
from .monitor import MonitorConfig, on_exit, read_sync, resize
from .record import Container


@dataclass
class ExecConfig:
    attach_stdin: bool | None = field(default=None, metadata={"json": "AttachStdin"})
    attach_stdout: bool | None = field(default=None, metadata={"json": "AttachStdout"})
    attach_stderr: bool | None = field(default=None, metadata={"json": "AttachStderr"})
    tty: bool | None = field(default=None, metadata={"json": "Tty"})
    env: list[str] | None = field(default=None, metadata={"json": "Env"})
    cmd: list[str] | None = field(default=None, metadata={"json": "Cmd"})
    privileged: bool | None = field(default=None, metadata={"json": "Privileged"})
    user: str | None = field(default=None, metadata={"json": "User"})
    working_dir: str | None = field(default=None, metadata={"json": "WorkingDir"})
    detach_keys: str | None = field(default=None, metadata={"json": "DetachKeys"})


@dataclass
class ExecSession:
    id: str
    container_id: str
    config: ExecConfig
    running: bool = False
    pid: int = 0
    exit_code: int | None = None
    started: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    size: tuple[int, int] | None = None  # the terminal's (height, width), once known
    directory: str = ""
    detach_keys: bytes = b""  # typed by the client on a TTY, they end the attachment

    def inspect(self) -> dict[str, Any]:
        c = self.config
        args = c.cmd or []
        return {
            "ID": self.id, "ContainerID": self.container_id, "Running": self.running,
            "ExitCode": self.exit_code, "Pid": self.pid, "CanRemove": False,
            "DetachKeys": c.detach_keys or "", "OpenStdin": bool(c.attach_stdin),
            "OpenStdout": bool(c.attach_stdout), "OpenStderr": bool(c.attach_stderr),
            "ProcessConfig": {"tty": bool(c.tty), "entrypoint": args[0] if args else "",
                              "arguments": args[1:], "privileged": bool(c.privileged),
                              "user": c.user or ""},
        }


ExecEvent = Callable[[str, Container, dict[str, str]], None]


def command_text(cmd: list[str]) -> str:
    """The command as dockerd's events show it: entrypoint, a space, the arguments
    joined (so ``["true"]`` is ``"true "``)."""
    return cmd[0] + " " + " ".join(cmd[1:])


class Execs:
    """Exec sessions, publishing dockerd's exec_create/exec_start/exec_die events."""

    def __init__(self, containers: Containers, monitors: MonitorConfig,
                 event: ExecEvent | None = None) -> None:
        self.containers = containers
        self.monitors = monitors
        self._event: ExecEvent = event or (lambda action, c, extra: None)
        self._sessions: dict[str, ExecSession] = {}

    def get(self, exec_id: str) -> ExecSession:
        session = self._sessions.get(exec_id)
        if session is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return session

    def create(self, ref: str, body: Any) -> ExecSession:
        c = self.containers.get(ref)
        try:
            config = decode(ExecConfig, body if body is not None else {})
        except DecodeError as exc:
            raise InvalidParameter(str(exc)) from None
        if not config.cmd:
            raise InvalidParameter("No exec command specified")
        detach_keys = parse_detach_keys(config.detach_keys)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        session = ExecSession(id=secrets.token_hex(32), container_id=c.id, config=config,
                              detach_keys=detach_keys)
        self._sessions[session.id] = session
        self._event(f"exec_create: {command_text(config.cmd)}", c, {"execID": session.id})
        return session

    def _process(self, c: Container, config: ExecConfig) -> dict[str, Any]:
        """The OCI process of the session: the container's, with the exec's overrides."""
        directory = self.containers.directory(c)
        with open(os.path.join(directory, "config.json")) as f:
            process: dict[str, Any] = json.load(f)["process"]
        process["args"] = list(config.cmd or [])
        process["terminal"] = bool(config.tty)
        env = {e.partition("=")[0]: e for e in process.get("env") or []}
        env.update({e.partition("=")[0]: e for e in config.env or []})
        process["env"] = list(env.values())
        if config.working_dir:
            process["cwd"] = config.working_dir
        if config.user:
            try:
                user = resolve_user(os.path.join(directory, "rootfs"), config.user)
            except ImageConfigError as exc:
                raise InvalidParameter(str(exc)) from None
            process["user"] = {"uid": user.uid, "gid": user.gid,
                               **({"additionalGids": user.additional_gids}
                                  if user.additional_gids else {})}
        if config.privileged:
            every = list(kcaps.CAPABILITIES[:kcaps.last_cap() + 1])
            process["capabilities"] = {"bounding": every, "effective": every,
                                       "permitted": every}
        process.pop("consoleSize", None)
        return process

    def startable(self, exec_id: str) -> ExecSession:
        """The session, if it can start now (else Docker's 404 or 409)."""
        session = self.get(exec_id)
        if session.started:
            raise Conflict(f"Exec {exec_id} has already been started")
        c = self.containers.get(session.container_id)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        return session

    async def start(self, exec_id: str, *, detach: bool,
                    size: tuple[int, int] | None = None) -> Attachment | None:
        """Run the session; for an attached one, the attachment to stream."""
        session = self.startable(exec_id)
        c = self.containers.get(session.container_id)
        session.started = True
        session.size = size or session.size
        directory = os.path.join(self.containers.directory(c), "exec", exec_id[:12])
        os.makedirs(directory, mode=0o700, exist_ok=True)
        spec = os.path.join(directory, "process.json")
        with open(spec, "w") as f:
            json.dump(self._process(c, session.config), f)
        cfg = session.config
        attach = None if detach else Attachment(
            stdin=bool(cfg.attach_stdin), stdout=bool(cfg.attach_stdout),
            stderr=bool(cfg.attach_stderr))
        if attach is not None and cfg.tty and cfg.attach_stdin:
            attach.watch_for_detach(session.detach_keys)
        try:
            sock, sync_fd, pid = await asyncio.to_thread(
                self._launch, c, session, directory, spec, attach is not None)
        except BaseException:
            session.exit_code = 126
            session.done.set()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        session.pid, session.running, session.directory = pid, True, directory
        self._event(f"exec_start: {command_text(cfg.cmd or [])}", c, {"execID": session.id})
        if session.size is not None:  # a resize that came while conmon was starting
            resize(directory, *session.size)
        if attach is not None and sock is not None:
            attach.adopt(sock)
            attach.started()
        asyncio.get_running_loop().create_task(self._finish(session, sync_fd, directory))
        return attach

    def _launch(self, c: Container, session: ExecSession, directory: str, spec: str,
                attached: bool) -> tuple[socket.socket | None, int, int]:
        """conmon --exec; for an attached session, connected before the process starts."""
        cfg = self.containers.monitors_of(c)
        sync_r, sync_w = os.pipe()
        start_r, start_w = os.pipe()
        attach_r, attach_w = os.pipe()
        ours, theirs = [sync_r, start_w, attach_r], [sync_w, start_r, attach_w]
        argv = [cfg.conmon, "--api-version", "1", "-c", c.id, "-u", session.id[:12],
                "-n", c.name, "-r", cfg.runtime, "-b", directory,
                "-p", os.path.join(directory, "pid"), "-P", os.path.join(directory, "conmon.pid"),
                "-l", f"k8s-file:{os.path.join(directory, 'log')}",
                "--exit-dir", directory, "--socket-dir-path", cfg.socket_dir,
                "--exec", "--exec-process-spec", spec, *cfg.runtime_argv(),
                "--log-level", "error"]
        if session.config.tty:
            argv.append("-t")
        if attached:
            argv.append("--exec-attach")
            if session.config.attach_stdin:
                argv.append("-i")
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "_OCI_SYNCPIPE": str(sync_w), "_OCI_STARTPIPE": str(start_r),
               **({"_OCI_ATTACHPIPE": str(attach_w)} if attached else {})}
        sock = None
        try:
            with open(os.path.join(directory, "conmon.log"), "ab") as log:
                first = subprocess.Popen(argv, pass_fds=tuple(theirs), env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
            for fd in theirs:
                os.close(fd)
            theirs = []
            os.write(start_w, b"0")  # conmon waits for this before it forks
            first.wait()
            if attached:
                ready = read_sync(attach_r)
                if ready.get("data", -1) != 0:
                    raise EngineError(f"exec: conmon could not attach: {ready}")
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                sock.connect(os.path.join(cfg.socket_dir, session.id[:12], "attach"))
                sock.setblocking(False)
                os.write(start_w, b"0")  # attached: run the process
            message = read_sync(sync_r)
            pid = message.get("data", -1)
            if not isinstance(pid, int) or pid <= 0:
                raise EngineError(f"OCI runtime exec failed: {message.get('message', '')}")
            ours.remove(sync_r)
            return sock, sync_r, pid
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        finally:
            for fd in ours + theirs:
                os.close(fd)

    async def _finish(self, session: ExecSession, sync_fd: int, directory: str) -> None:
        try:
            message = await asyncio.to_thread(read_sync, sync_fd, None)
        finally:
            os.close(sync_fd)
        with suppress(OSError, ValueError), \
                open(os.path.join(directory, "conmon.pid")) as f:
            on_exit(int(f.read().strip()), lambda: None)  # reap it: we are its subreaper
        code = message.get("data")
        session.exit_code = code if isinstance(code, int) and code >= 0 else 126
        session.running = False
        with suppress(EngineError):  # the container may be gone by now
            self._event("exec_die", self.containers.get(session.container_id),
                        {"execID": session.id, "exitCode": str(session.exit_code)})
        session.done.set()
        link = os.path.join(self.monitors.socket_dir, session.id[:12])
        if os.path.islink(link):
            os.unlink(link)
        shutil.rmtree(directory, ignore_errors=True)

    def resize(self, exec_id: str, height: int, width: int) -> None:
        session = self.get(exec_id)
        session.size = (height, width)
        if session.directory:
            resize(session.directory, height, width)

    def discard(self, exec_id: str) -> None:
        """Forget a finished session (healthcheck probes are not kept, as in dockerd)."""
        self._sessions.pop(exec_id, None)
