"""run, attach, exec: the commands that carry a container's stdio."""

from __future__ import annotations

import os
import sys

from .. import flags, runopts, stream
from ..api import APIError
from ..errors import CommandError, StatusExit, run_hint
from ..flags import BOOL, LIST, STR, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..api import Client
    from ..main import Cli


def _help(name: str, synopsis: str, text: str, opts: list[Opt]) -> int:
    sys.stdout.write(flags.usage(name, synopsis, text, opts))
    return 0


def create_container(cli: Cli, p: flags.Parsed, body: dict[str, Any]) -> str:
    """POST /containers/create; a missing image is pulled first (as docker: "Unable to
    find image … locally" on stderr), unless --pull never."""
    client = cli.client
    image = body["Image"]
    params = {"name": p.name, "platform": p.platform}
    if p.pull == "always":
        pull_image(cli, image, quiet=p.quiet, out=sys.stderr)
    try:
        created = client.post("/containers/create", params, body)
    except APIError as exc:
        if exc.status != 404 or p.pull == "never" or "No such image" not in exc.message:
            raise
        full = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else image + ":latest"
        print(f"Unable to find image '{full}' locally", file=sys.stderr)
        pull_image(cli, image, quiet=p.quiet, out=sys.stderr)
        created = client.post("/containers/create", params, body)
    for warning in created.get("Warnings") or []:
        print(f"WARNING: {warning}", file=sys.stderr)
    return str(created["Id"])


def pull_image(cli: Cli, image: str, quiet: bool = False, out: Any = None,
               platform: str | None = None) -> None:
    from .. import auth, progress

    name, tag = split_reference(image)
    response = cli.client.call("POST", "/images/create",
                               {"fromImage": name, "tag": tag, "platform": platform},
                               headers=auth.header(cli.config_dir, image))
    messages = response.json_stream()
    if quiet:
        for message in messages:
            if message.get("error"):
                raise CommandError(message.get("error"))
        return
    progress.show(messages, out=out or sys.stdout)


def split_reference(image: str) -> tuple[str, str]:
    """(name, tag or digest) as the pull endpoint takes them; "latest" by default."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:]
    return image, "latest"


def start_error_status(message: str) -> int:
    """docker's runStartContainerErr: 127 not found, 126 cannot invoke, else 125."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def _resizer(client: Client, path: str) -> Any:
    def resize(height: int, width: int) -> None:
        try:
            client.call("POST", path, {"h": height, "w": width}).read()
        except (APIError, OSError):
            pass
    return resize


def run(cli: Cli, argv: list[str]) -> int:
    p = flags.parse(runopts.RUN_OPTS, argv, interspersed=False)
    if p.help:
        return _help("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]",
                     "Create and run a new container from an image", runopts.RUN_OPTS)
    if not p.args:
        raise flags.UsageError('"sampan run" requires at least 1 argument.\n'
                               "Usage:  sampan run [OPTIONS] IMAGE [COMMAND] [ARG...]")
    body = runopts.build(p, p.args[0], p.args[1:], p.detach)
    if p.tty and body["AttachStdin"] and not os.isatty(0):
        raise CommandError("the input device is not a TTY", 1)
    client = cli.client
    cid = create_container(cli, p, body)
    if p.detach:
        _start(client, cid)
        print(cid)
        return 0
    return _attach_start_wait(cli, cid, body, p.detach_keys, autoremove=p.rm,
                              sig_proxy=p.sig_proxy)


def _start(client: Client, cid: str) -> None:
    try:
        client.call("POST", f"/containers/{cid}/start").read()
    except APIError as exc:
        print(f"sampan: Error response from daemon: {exc.message}{run_hint('run')}",
              file=sys.stderr)
        raise StatusExit(start_error_status(exc.message)) from None


PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def proxy_signals(client: Client, cid: str) -> None:
    """Send the signals we get to the container, as docker's --sig-proxy (without a
    terminal: with one, ^C is a byte the container's terminal turns into SIGINT)."""
    import _signal  # type: ignore[import-not-found]  # typeshed describes only `signal`

    def forward(signum: int, _frame: object) -> None:
        try:
            client.call("POST", f"/containers/{cid}/kill", {"signal": str(signum)}).read()
        except (APIError, OSError):
            pass

    for name in PROXIED_SIGNALS:
        _signal.signal(getattr(_signal, name), forward)


def _attach_start_wait(cli: Cli, cid: str, config: dict[str, Any],
                       detach_keys: str | None, autoremove: bool,
                       sig_proxy: bool = True) -> int:
    client = cli.client
    tty = bool(config.get("Tty"))
    want_in = bool(config.get("AttachStdin"))
    attached = None
    if want_in or config.get("AttachStdout") or config.get("AttachStderr"):
        attached = client.hijack(f"/containers/{cid}/attach", {
            "stream": True, "stdin": want_in, "stdout": bool(config.get("AttachStdout")),
            "stderr": bool(config.get("AttachStderr")), "detachKeys": detach_keys})
    result = client.wait_later(cid, "removed" if autoremove else "next-exit")
    try:
        _start(client, cid)
    except StatusExit:
        if attached is not None:
            attached.close()
        raise
    if sig_proxy and not tty:
        proxy_signals(client, cid)
    if attached is None:
        return _exit_code(result())
    resize = _resizer(client, f"/containers/{cid}/resize") if tty and os.isatty(1) else None
    if _copy(attached, tty, want_in, resize, detach_keys):
        return 0
    return _exit_code(result())


def _copy(attached: Any, tty: bool, want_in: bool, resize: Any,
          detach_keys: str | None) -> bool:
    """Run the session (stdin raw when it is a terminal); whether the user detached."""
    if tty and want_in and os.isatty(0):
        with stream.RawTerminal(0):
            tail = stream.pump(attached, tty, want_in, resize)
    else:
        tail = stream.pump(attached, tty, want_in, resize)
    return bool(want_in and tail.endswith(stream.detach_sequence(detach_keys)))


def _exit_code(result: Any) -> int:
    error = (result or {}).get("Error") or {}
    if error.get("Message"):
        print(f"sampan: {error['Message']}", file=sys.stderr)
    return int((result or {}).get("StatusCode", 0))


def start_attached(cli: Cli, cid: str, interactive: bool, detach_keys: str | None) -> int:
    """`start -a [-i]`: attach, start, copy, and the container's exit code."""
    info = cli.client.get(f"/containers/{cid}/json")
    config = dict(info["Config"])
    config.update(AttachStdin=interactive and bool(config.get("OpenStdin")),
                  AttachStdout=True, AttachStderr=True)
    return _attach_start_wait(cli, info["Id"], config, detach_keys,
                              autoremove=bool(info["HostConfig"].get("AutoRemove")))


ATTACH_OPTS = [Opt("detach-keys", STR), Opt("no-stdin"), Opt("sig-proxy", default=True)]


def attach(cli: Cli, argv: list[str]) -> int:
    p = flags.parse(ATTACH_OPTS, argv)
    if p.help:
        return _help("attach", "[OPTIONS] CONTAINER", "Attach local standard input, output, "
                     "and error streams to a running container", ATTACH_OPTS)
    if len(p.args) != 1:
        raise flags.UsageError('"sampan attach" requires exactly 1 argument.')
    client = cli.client
    info = client.get(f"/containers/{p.args[0]}/json")
    if not info["State"]["Running"]:
        raise CommandError("You cannot attach to a stopped container, start it first")
    if info["State"].get("Paused"):
        raise CommandError("You cannot attach to a paused container, unpause it first")
    cid, tty = info["Id"], bool(info["Config"].get("Tty"))
    want_in = not p.no_stdin and bool(info["Config"].get("OpenStdin"))
    if tty and want_in and not os.isatty(0):
        raise CommandError("the input device is not a TTY")
    attached = client.hijack(f"/containers/{cid}/attach", {
        "stream": True, "stdin": want_in, "stdout": True, "stderr": True,
        "detachKeys": p.detach_keys})
    result = client.wait_later(cid, "not-running")
    resize = _resizer(client, f"/containers/{cid}/resize") if tty and os.isatty(1) else None
    if _copy(attached, tty, want_in, resize, p.detach_keys):
        return 0
    return _exit_code(result())


EXEC_OPTS = [Opt("d,detach", BOOL, "Detached mode: run command in the background"),
             Opt("detach-keys", STR), Opt("e,env", LIST, "Set environment variables"),
             Opt("env-file", LIST), Opt("i,interactive", BOOL, "Keep STDIN open"),
             Opt("privileged"), Opt("t,tty", BOOL, "Allocate a pseudo-TTY"),
             Opt("u,user", STR, "Username or UID"), Opt("w,workdir", STR)]


def exec_(cli: Cli, argv: list[str]) -> int:
    p = flags.parse(EXEC_OPTS, argv, interspersed=False)
    if p.help:
        return _help("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]",
                     "Execute a command in a running container", EXEC_OPTS)
    if len(p.args) < 2:
        raise flags.UsageError('"sampan exec" requires at least 2 arguments.')
    if p.tty and p.interactive and not p.detach and not os.isatty(0):
        raise CommandError("the input device is not a TTY")
    client = cli.client
    container, command = p.args[0], p.args[1:]
    attach_in = p.interactive and not p.detach
    config: dict[str, Any] = {
        "User": p.user or "", "Privileged": p.privileged, "Tty": p.tty,
        "AttachStdin": attach_in, "AttachStdout": not p.detach,
        "AttachStderr": not p.detach, "Detach": p.detach,
        "Env": runopts.env_list(p.env, p.env_file), "WorkingDir": p.workdir or "",
        "Cmd": command}
    if p.detach_keys:
        config["DetachKeys"] = p.detach_keys
    size = stream.terminal_size() if p.tty and os.isatty(1) else None
    if size:
        config["ConsoleSize"] = list(size)
    exec_id = client.post(f"/containers/{container}/exec", None, config)["Id"]
    if p.detach:
        client.call("POST", f"/exec/{exec_id}/start", None,
                    {"Detach": True, "Tty": p.tty}).read()
        return 0
    start = {"Detach": False, "Tty": p.tty}
    if size:
        start["ConsoleSize"] = list(size)
    attached = client.hijack(f"/exec/{exec_id}/start", None, start)
    resize = _resizer(client, f"/exec/{exec_id}/resize") if size else None
    if _copy(attached, p.tty, attach_in, resize, p.detach_keys):
        return 0
    info = client.get(f"/exec/{exec_id}/json")
    code = info.get("ExitCode")
    return int(code) if code is not None else 0
