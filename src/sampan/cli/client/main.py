"""Entry point: global flags, then the command's module, imported only when named."""

from __future__ import annotations

import os
import sys

from . import flags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .api import Client

# command -> (module, function); modules are imported on use, as pip does.
COMMANDS: dict[str, tuple[str, str]] = {
    **{name: ("containers", name) for name in (
        "create", "start", "stop", "restart", "kill", "rm", "wait", "inspect", "top",
        "pause", "unpause", "rename", "diff", "port", "update", "export", "commit")},
    "run": ("run", "run"), "attach": ("run", "attach"), "exec": ("run", "exec_"),
    "ps": ("listing", "ps"), "images": ("listing", "images"),
    "logs": ("logs", "logs"), "events": ("logs", "events"),
    "stats": ("stats", "stats"), "cp": ("cp", "cp"),
    **{name: ("images", name) for name in (
        "pull", "push", "tag", "rmi", "save", "load", "history")},
    "import": ("images", "import_"),
    **{name: ("registry", name) for name in ("search", "login", "logout")},
    "info": ("system", "info"), "version": ("system", "version"),
    "build": ("build", "build"),
}

# grouped forms: `sampan container ls` is `sampan ps`; others have their own functions.
GROUPS: dict[str, dict[str, str | tuple[str, str]]] = {
    "container": {
        **{n: n for n in ("attach", "commit", "cp", "create", "diff", "exec", "export",
                          "inspect", "kill", "logs", "pause", "port", "rename", "restart",
                          "rm", "run", "start", "stats", "stop", "top", "unpause",
                          "update", "wait")},
        "ls": "ps", "list": "ps", "ps": "ps", "remove": "rm",
        "prune": ("containers", "prune")},
    "image": {
        **{n: n for n in ("history", "import", "load", "pull", "push", "save", "tag")},
        "ls": "images", "list": "images", "rm": "rmi", "remove": "rmi", "build": "build",
        "inspect": ("images", "inspect"), "prune": ("images", "prune")},
    "system": {"info": "info", "events": "events", "df": ("system", "df"),
               "check": ("check", "check"),
               "prune": ("system", "prune")},
    "network": {**{n: ("networks", n) for n in ("create", "ls", "rm", "inspect", "connect",
                                                "disconnect", "prune")},
                "list": ("networks", "ls"), "remove": ("networks", "rm")},
    "volume": {**{n: ("volumes", n) for n in ("create", "ls", "rm", "inspect", "prune")},
               "list": ("volumes", "ls"), "remove": ("volumes", "rm")},
}

GLOBAL = [flags.Opt("H,host", flags.LIST), flags.Opt("config", flags.STR),
          flags.Opt("D,debug"), flags.Opt("l,log-level", flags.STR),
          flags.Opt("v,version"), flags.Opt("c,context", flags.STR),
          flags.Opt("tls"), flags.Opt("tlsverify"), flags.Opt("tlscacert", flags.STR),
          flags.Opt("tlscert", flags.STR), flags.Opt("tlskey", flags.STR)]

HELP = """
Usage:  sampan [OPTIONS] COMMAND

A self-sufficient runtime for containers (Docker's command line, against sampand)

Common Commands:
  run, exec, ps, build, pull, push, images, login, logout, search, version, info

Management Commands:
  container, image, network, volume, system

Commands:
  attach, commit, cp, create, diff, events, export, history, import, inspect, kill,
  load, logs, pause, port, rename, restart, rm, rmi, save, start, stats, stop, tag,
  top, unpause, update, wait

Global Options:
  -H, --host list     Daemon socket to connect to (also SAMPAN_HOST, DOCKER_HOST)
      --config string Location of client config files (default "~/.docker")
  -v, --version       Print version information and quit

Run 'sampan COMMAND --help' for more information on a command.
"""


class Cli:
    """What every command gets: the daemon client and the config directory."""

    def __init__(self, host: str, autostart: bool, config_dir: str) -> None:
        self.host = host
        self.config_dir = config_dir
        self._autostart = autostart
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from .api import Client

            self._client = Client(self.host, self._autostart)
        return self._client


def choose_host(given: list[str] | None) -> tuple[str, bool]:
    """The daemon, and whether we may start sampand there when it is not running: for
    the default socket, and for a SAMPAN_HOST that comes with its SAMPAN_DATA_ROOT (a
    sampand of one's own); never for a docker host, nor with SAMPAN_NO_AUTOSTART=1."""
    from .api import DEFAULT_HOST

    env = os.environ
    if given:
        host, autostart = given[-1], given[-1] == DEFAULT_HOST
    elif env.get("SAMPAN_HOST"):
        host = env["SAMPAN_HOST"]
        autostart = host == DEFAULT_HOST or bool(env.get("SAMPAN_DATA_ROOT"))
    elif env.get("DOCKER_HOST"):
        host, autostart = env["DOCKER_HOST"], False
    else:
        host, autostart = DEFAULT_HOST, True
    return host, autostart and env.get("SAMPAN_NO_AUTOSTART") != "1"


def resolve(argv: list[str]) -> tuple[str, str, str, list[str]] | None:
    """(module, function, display name, rest) for a command line; None if unknown."""
    name, rest = argv[0], argv[1:]
    if name in GROUPS:
        group = GROUPS[name]
        if not rest or rest[0] in ("--help", "-h", "help"):
            return None
        sub = rest[0]
        target = group.get(sub)
        if target is None:
            return None
        if isinstance(target, tuple):
            return target[0], target[1], f"{name} {sub}", rest[1:]
        module, func = COMMANDS[target]
        return module, func, f"{name} {sub}", rest[1:]
    if name in COMMANDS:
        module, func = COMMANDS[name]
        return module, func, name, rest
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        top = flags.parse(GLOBAL, argv, interspersed=False)
    except flags.UsageError as exc:
        print(f"{exc}\nSee 'sampan --help'.", file=sys.stderr)
        return 125
    if top.version:
        from ... import __version__

        print(f"sampan version {__version__}")
        return 0
    if top.help or not top.args:
        print(HELP.strip("\n"), file=sys.stdout if top.help else sys.stderr)
        return 0
    if top.args[0] == "help":
        return main([*top.args[1:], "--help"] if top.args[1:] else ["--help"])
    target = resolve(top.args)
    if target is None:
        name = top.args[0]
        if name in GROUPS:
            print(f"\nUsage:  sampan {name} COMMAND\n\nManage {name}s\n\nCommands:\n  "
                  + ", ".join(sorted(GROUPS[name])) + "\n")
            return 0 if len(top.args) == 1 or top.args[1] in ("--help", "-h", "help") \
                else 1
        print(f"sampan: '{name}' is not a sampan command.\nSee 'sampan --help'",
              file=sys.stderr)
        return 1
    module_name, func_name, display, rest = target
    host, autostart = choose_host(top.host)
    config_dir = top.config or os.environ.get("DOCKER_CONFIG") or \
        os.path.join(os.path.expanduser("~"), ".docker")
    cli = Cli(host, autostart, config_dir)
    module = __import__(f"{__package__}.commands.{module_name}", fromlist=[func_name])
    command = getattr(module, func_name)
    from .errors import run_command

    return run_command(command, cli, display, rest)


def entry() -> None:
    """The console script."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.stderr.flush()
    # No interpreter tear-down (freeing every module and object: a few ms of each run):
    # what the command wrote is in closed files or the standard streams, flushed above.
    os._exit(code)
