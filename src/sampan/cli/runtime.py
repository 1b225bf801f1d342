"""sampan-runtime: runc's command line over sampan's runtime, so podman, conmon or dockerd
can drive it as they drive runc."""

from __future__ import annotations

import os
import sys

from .. import __version__
from ..oci import SPEC_VERSION, jsonio
from .options import Arg, Command, Flag, parse, print_help

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import SimpleNamespace
    from typing import Any

DEFAULT_ROOT = "/run/sampan-runtime"


class _Log:
    """Errors go to stderr, and also to --log in runc's text or JSON format."""

    def __init__(self, path: str | None, fmt: str) -> None:
        self.path, self.fmt = path, fmt

    def error(self, message: str) -> None:
        print(f"sampan-runtime: {message}", file=sys.stderr)
        if not self.path:
            return
        from datetime import UTC, datetime

        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if self.fmt == "json":
            line = jsonio.dumps({"level": "error", "msg": message, "time": now})
        else:
            line = f'time="{now}" level=error msg="{message}"'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


_GLOBAL = [
    Flag("--version", "-v", kind="bool"),
    Flag("--root", default=DEFAULT_ROOT),
    Flag("--log"),
    Flag("--log-format", default="text", choices=("text", "json")),
    Flag("--debug", kind="bool"),
    Flag("--systemd-cgroup", kind="bool"),
    Flag("--rootless", default="auto"),
    Flag("--criu"),
]
_CREATE = [
    Flag("--bundle", "-b", default="."),
    Flag("--console-socket"),
    Flag("--pid-file"),
    Flag("--no-pivot", kind="bool"),
    Flag("--no-new-keyring", kind="bool"),
    Flag("--preserve-fds", kind="int", default=0),
]
_RUN = [*_CREATE, Flag("--detach", "-d", kind="bool"), Flag("--keep", kind="bool"),
        Flag("--no-subreaper", kind="bool")]
_EXEC = [
    Flag("--console-socket"), Flag("--cwd"), Flag("--env", "-e", kind="append"),
    Flag("--tty", "-t", kind="bool"), Flag("--user", "-u"),
    Flag("--additional-gids", "-g", kind="append_int"), Flag("--process", "-p"),
    Flag("--detach", "-d", kind="bool"), Flag("--pid-file"), Flag("--process-label"),
    Flag("--apparmor"), Flag("--no-new-privs", kind="bool"), Flag("--cap", "-c", kind="append"),
    Flag("--preserve-fds", kind="int", default=0), Flag("--ignore-paused", kind="bool"),
    Flag("--cgroup"),
]
_UPDATE = [Flag("--resources", "-r")] + [
    Flag(f"--{name}") for name in (
        "blkio-weight", "cpu-period", "cpu-quota", "cpu-rt-period", "cpu-rt-runtime",
        "cpu-share", "cpuset-cpus", "cpuset-mems", "memory", "memory-reservation",
        "memory-swap", "pids-limit", "kernel-memory")]
_FORMAT = Flag("--format", "-f", default="table", choices=("table", "json"))
_ID = [Arg("id")]
_COMMANDS = {
    "create": Command("create a container", _CREATE, _ID),
    "run": Command("create and start a container", _RUN, _ID),
    "start": Command("start a created container", [], _ID),
    "state": Command("print a container's state", [], _ID),
    "pause": Command("pause a container", [], _ID),
    "resume": Command("resume a paused container", [], _ID),
    "kill": Command("send a signal to the container's init", [Flag("--all", "-a", kind="bool")],
                    [Arg("id"), Arg("signal", "?", default="SIGTERM")]),
    "delete": Command("delete a container", [Flag("--force", "-f", kind="bool")],
                      [Arg("ids", "+")]),
    "list": Command("list containers", [_FORMAT, Flag("--quiet", "-q", kind="bool")], []),
    "ps": Command("processes running in a container", [_FORMAT],
                  [Arg("id"), Arg("ps_args", "...")]),
    "exec": Command("run a process in a running container", _EXEC,
                    [Arg("id"), Arg("exec_args", "...", metavar="command")]),
    "spec": Command("write a default config.json",
                    [Flag("--bundle", "-b", default="."), Flag("--rootless", kind="bool")], []),
    "features": Command("show what this runtime supports", [], []),
    "update": Command("change a container's resource limits", _UPDATE, _ID),
    "events": Command("container events and statistics",
                      [Flag("--stats", kind="bool"), Flag("--interval", default="5s")], _ID),
}
_PROG, _DESCRIPTION = "sampan-runtime", "An OCI runtime with runc's command line."


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    args = parse(_PROG, _DESCRIPTION, _GLOBAL, _COMMANDS, argv)
    log = _Log(args.log, args.log_format)
    if args.version:
        print(f"sampan-runtime version {__version__}\nspec: {SPEC_VERSION}")
        return 0
    if not args.command:
        print_help(_PROG, _DESCRIPTION, _GLOBAL, _COMMANDS)
        return 0
    try:
        if as_program:
            from ..runtime import sealed

            if args.command in sealed.ENTERING:
                # (the launcher has done it already; not when main() is reached otherwise)
                sealed.ensure_protected_exe()
        return int(_dispatch(args) or 0)
    except _user_errors() as exc:  # (evaluated only when something was raised)
        log.error(str(exc))
    except OSError as exc:
        log.error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
    except KeyboardInterrupt:
        return 130
    return 1


def _user_errors() -> tuple[type[Exception], ...]:
    """The runtime's own failures, reported as one line: imported only on failure, so that
    a light command (``state``) does not load the modules that raise them."""
    from ..cgroups.base import CgroupError
    from ..oci.spec import ConfigError
    from ..runtime.channel import SetupError
    from ..runtime.hooks import HookError
    from ..runtime.state import ContainerError

    return ConfigError, ContainerError, SetupError, HookError, CgroupError


def _dispatch(args: SimpleNamespace) -> int:
    command = args.command
    if command == "spec":
        return _spec(args)
    if command == "state":  # podman and conmon ask often: no more than the record's module
        from ..runtime.state import StateStore, oci_state

        print(jsonio.dumps(oci_state(StateStore(args.root), args.id), indent=2))
        return 0
    if command == "features":
        from ..runtime.features import features

        print(jsonio.dumps(features(), indent=2))
        return 0
    from ..runtime.container import Runtime

    rt = Runtime(args.root)
    if command == "create":
        rt.create(args.id, args.bundle, console_socket=args.console_socket,
                  pid_file=args.pid_file, no_pivot=args.no_pivot,
                  preserve_fds=args.preserve_fds)
        return 0
    if command == "run":
        return _run(rt, args)
    if command == "start":
        rt.start(args.id)
    elif command == "kill":
        rt.kill(args.id, parse_signal(args.signal), all_processes=args.all)
    elif command == "delete":
        for cid in args.ids:
            rt.delete(cid, force=args.force)
    elif command == "pause":
        rt.pause(args.id)
    elif command == "resume":
        rt.resume(args.id)
    elif command == "list":
        _list(rt, args)
    elif command == "ps":
        return _ps(rt, args)
    elif command == "exec":
        return _exec(rt, args)
    elif command == "update":
        rt.update(args.id, _update_resources(args))
    elif command == "events":
        return _events(rt, args)
    return 0


def parse_signal(value: str) -> int:
    import signal

    from ..runtime.state import ContainerError

    if value.isdigit():
        return int(value)
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ContainerError(f"unknown signal {value!r}") from None


def _spec(args: SimpleNamespace) -> int:
    from ..oci.defaults import default_spec

    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        from ..runtime.state import ContainerError

        raise ContainerError(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        f.write(jsonio.dumps(default_spec(rootless=args.rootless), indent="\t"))
    return 0


def _run(rt: Any, args: SimpleNamespace) -> int:
    from ..runtime import foreground

    started = rt.create(args.id, args.bundle, console_socket=args.console_socket,
                        pid_file=args.pid_file, no_pivot=args.no_pivot,
                        preserve_fds=args.preserve_fds, detach_terminal=args.detach)
    if not args.detach:
        foreground.hold()
    try:
        rt.start(args.id)
    except BaseException:
        rt.delete(args.id, force=True)
        raise
    if args.detach:
        return 0
    try:
        code = foreground.wait(started.pid, started.pty_master)
        if rt.oom_killed(args.id):
            print(f"sampan-runtime: container {args.id}: a process was killed by the OOM "
                  "killer (memory limit reached)", file=sys.stderr)
    finally:
        if not args.keep:
            rt.delete(args.id, force=True)
    return code


def _list(rt: Any, args: SimpleNamespace) -> None:
    states = rt.list()
    if args.quiet:
        for s in states:
            print(s["id"])
    elif args.format == "json":
        print(jsonio.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                 for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _ps(rt: Any, args: SimpleNamespace) -> int:
    import subprocess

    pids = rt.pids(args.id)
    if args.format == "json":
        print(jsonio.dumps(pids))
        return 0
    ps_args = args.ps_args or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        from ..runtime.state import ContainerError

        raise ContainerError("couldn't find PID field in ps output")
    col = header.index("PID")
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def _exec(rt: Any, args: SimpleNamespace) -> int:
    from ..oci.decode import DecodeError, decode
    from ..oci.spec import Capabilities, ConfigError, Process, User

    _record, spec = rt.load(args.id)
    if args.process:
        with open(args.process) as f:
            try:
                proc = decode(Process, jsonio.loads(f.read()), "process")
            except DecodeError as exc:
                raise ConfigError(str(exc)) from None
    else:
        if not args.exec_args:
            raise ConfigError("exec: a command is required (args or --process)")
        base = spec.process or Process()
        user = base.user
        if args.user:
            uid, _, gid = args.user.partition(":")
            user = User(uid=int(uid), gid=int(gid) if gid else 0)
        if args.additional_gids:
            user.additional_gids = args.additional_gids
        env = list(base.env or []) + args.env
        caps = base.capabilities or Capabilities()
        if args.cap:
            # runc adds --cap to the bounding, effective and permitted sets.
            extra = [c if c.startswith("CAP_") else "CAP_" + c.upper() for c in args.cap]
            caps = Capabilities(
                bounding=_union(caps.bounding, extra), effective=_union(caps.effective, extra),
                permitted=_union(caps.permitted, extra), inheritable=caps.inheritable,
                ambient=caps.ambient)
        proc = Process(cwd=args.cwd or base.cwd, args=args.exec_args, env=env,
                       terminal=args.tty, user=user, capabilities=caps, rlimits=base.rlimits,
                       no_new_privileges=args.no_new_privs or base.no_new_privileges,
                       apparmor_profile=args.apparmor or base.apparmor_profile,
                       oom_score_adj=base.oom_score_adj,
                       selinux_label=args.process_label or base.selinux_label,
                       exec_cpu_affinity=base.exec_cpu_affinity)
    if not proc.args:
        raise ConfigError("process.args: must contain at least the program to run")
    started = rt.exec(args.id, proc, console_socket=args.console_socket,
                      pid_file=args.pid_file, detach=args.detach,
                      preserve_fds=args.preserve_fds)
    if args.detach:
        return 0
    from ..runtime import foreground

    return foreground.wait(started.pid, started.pty_master)


def _union(a: list[str] | None, b: list[str]) -> list[str]:
    return sorted(set(a or []) | set(b))


_SIZE_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: str) -> int:
    """Docker's RAMInBytes: 100m, 1g, 512k, plain bytes; -1 means unlimited."""
    v = value.strip().lower().rstrip("b") or "0"
    if v.lstrip("-").isdigit():
        return int(v)
    unit = _SIZE_UNITS.get(v[-1])
    if unit is None or not v[:-1].replace(".", "", 1).isdigit():
        from ..oci.spec import ConfigError

        raise ConfigError(f"invalid size: {value!r}")
    return int(float(v[:-1]) * unit)


def _update_resources(args: SimpleNamespace) -> dict[str, Any]:
    if args.resources:
        if args.resources == "-":
            data: dict[str, Any] = jsonio.loads(sys.stdin.read())
        else:
            with open(args.resources) as f:
                data = jsonio.loads(f.read())
        return data
    res: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        res.setdefault(section, {})[key] = value

    if args.memory is not None:
        put("memory", "limit", parse_size(args.memory))
    if args.memory_reservation is not None:
        put("memory", "reservation", parse_size(args.memory_reservation))
    if args.memory_swap is not None:
        put("memory", "swap", parse_size(args.memory_swap))
    if args.cpu_share is not None:
        put("cpu", "shares", int(args.cpu_share))
    if args.cpu_quota is not None:
        put("cpu", "quota", int(args.cpu_quota))
    if args.cpu_period is not None:
        put("cpu", "period", int(args.cpu_period))
    if args.cpu_rt_period is not None:
        put("cpu", "realtimePeriod", int(args.cpu_rt_period))
    if args.cpu_rt_runtime is not None:
        put("cpu", "realtimeRuntime", int(args.cpu_rt_runtime))
    if args.cpuset_cpus is not None:
        put("cpu", "cpus", args.cpuset_cpus)
    if args.cpuset_mems is not None:
        put("cpu", "mems", args.cpuset_mems)
    if args.pids_limit is not None:
        put("pids", "limit", int(args.pids_limit))
    if args.blkio_weight is not None:
        put("blockIO", "weight", int(args.blkio_weight))
    return res


def _events(rt: Any, args: SimpleNamespace) -> int:
    """runc's events: --stats prints one stats event; otherwise stats every interval and
    an ``oom`` event when the kernel OOM-kills a process of the container."""
    import time

    record = rt.store.load(args.id)
    cgroup = rt._require_cgroup(record)
    if args.stats:
        print(jsonio.dumps({"type": "stats", "id": args.id, "data": cgroup.stats()}))
        return 0
    interval = float(args.interval.rstrip("s") or 5)
    ooms = cgroup.oom_kills()
    next_stats = 0.0
    while rt.status(record) != "stopped":
        now = time.monotonic()
        count = cgroup.oom_kills()
        if count > ooms:
            print(jsonio.dumps({"type": "oom", "id": args.id}), flush=True)
            ooms = count
        if now >= next_stats:
            print(jsonio.dumps({"type": "stats", "id": args.id, "data": cgroup.stats()}),
                  flush=True)
            next_stats = now + interval
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
