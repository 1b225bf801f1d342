"""Container commands that send one request per container and print little."""

from __future__ import annotations

import sys

from .... import humanize
from .. import flags, runopts
from ..errors import CommandError
from ..flags import BOOL, INT, LIST, STR, Opt
from . import confirm, each, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli


def create(cli: Cli, argv: list[str]) -> int:
    p = parse("create", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container",
              runopts.CREATE_OPTS, argv, 1, interspersed=False)
    if p is None:
        return 0
    from .run import create_container

    body = runopts.build(p, p.args[0], p.args[1:], detach=False)
    print(create_container(cli, p, body))
    return 0


START_OPTS = [Opt("a,attach", BOOL, "Attach STDOUT/STDERR and forward signals"),
              Opt("detach-keys", STR), Opt("i,interactive", BOOL, "Attach container's STDIN")]


def start(cli: Cli, argv: list[str]) -> int:
    p = parse("start", "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped "
              "containers", START_OPTS, argv, 1)
    if p is None:
        return 0
    if p.attach or p.interactive:
        if len(p.args) > 1:
            raise CommandError("you cannot start and attach multiple containers at once")
        from .run import start_attached

        return start_attached(cli, p.args[0], p.interactive, p.detach_keys)
    client = cli.client
    failed = each(p.args, lambda c: client.call("POST", f"/containers/{c}/start").read())
    if failed:
        raise CommandError("Error: failed to start containers: " + ", ".join(p.args))
    return 0


STOP_OPTS = [Opt("s,signal", STR, "Signal to send to the container"),
             Opt("t,time,timeout", INT, "Seconds to wait before killing the container")]


def _stop_params(p: flags.Parsed) -> dict[str, Any]:
    return {"t": p.time, "signal": p.signal}


def stop(cli: Cli, argv: list[str]) -> int:
    p = parse("stop", "[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running "
              "containers", STOP_OPTS, argv, 1)
    if p is None:
        return 0
    params = _stop_params(p)
    return each(p.args, lambda c: cli.client.call("POST", f"/containers/{c}/stop",
                                                  params).read())


def restart(cli: Cli, argv: list[str]) -> int:
    p = parse("restart", "[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more "
              "containers", STOP_OPTS, argv, 1)
    if p is None:
        return 0
    params = _stop_params(p)
    return each(p.args, lambda c: cli.client.call("POST", f"/containers/{c}/restart",
                                                  params).read())


def kill(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("s,signal", STR, "Signal to send to the container")]
    p = parse("kill", "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running "
              "containers", opts, argv, 1)
    if p is None:
        return 0
    return each(p.args, lambda c: cli.client.call("POST", f"/containers/{c}/kill",
                                                  {"signal": p.signal}).read())


def rm(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("f,force", BOOL, "Force the removal of a running container"),
            Opt("l,link"), Opt("v,volumes", BOOL, "Remove anonymous volumes")]
    p = parse("rm", "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
              opts, argv, 1)
    if p is None:
        return 0
    params = {"force": p.force or None, "v": p.volumes or None, "link": p.link or None}
    return each(p.args, lambda c: cli.client.call("DELETE", f"/containers/{c}",
                                                  params).read())


def _simple(cli: Cli, argv: list[str], name: str, verb: str, text: str) -> int:
    p = parse(name, "CONTAINER [CONTAINER...]", text, [], argv, 1)
    if p is None:
        return 0
    return each(p.args, lambda c: cli.client.call("POST", f"/containers/{c}/{verb}").read())


def pause(cli: Cli, argv: list[str]) -> int:
    return _simple(cli, argv, "pause", "pause", "Pause all processes within one or more "
                   "containers")


def unpause(cli: Cli, argv: list[str]) -> int:
    return _simple(cli, argv, "unpause", "unpause", "Unpause all processes within one or "
                   "more containers")


def wait(cli: Cli, argv: list[str]) -> int:
    p = parse("wait", "CONTAINER [CONTAINER...]", "Block until one or more containers "
              "stop, then print their exit codes", [], argv, 1)
    if p is None:
        return 0
    return each(p.args, lambda c: str(cli.client.post(f"/containers/{c}/wait")
                                      ["StatusCode"]))


def rename(cli: Cli, argv: list[str]) -> int:
    p = parse("rename", "CONTAINER NEW_NAME", "Rename a container", [], argv, 2, 2)
    if p is None:
        return 0
    old, new = p.args
    if not new.strip():
        raise CommandError("Error: neither old nor new names may be empty")
    cli.client.call("POST", f"/containers/{old}/rename", {"name": new}).read()
    return 0


INSPECT_OPTS = [Opt("f,format", STR, "Format output using a custom template"),
                Opt("s,size", BOOL, "Display total file sizes if the type is container"),
                Opt("type", STR, "Only inspect objects of the given type")]

_KINDS = {"container": ("/containers/{}/json", "No such container"),
          "image": ("/images/{}/json", "No such image"),
          "network": ("/networks/{}", "network"), "volume": ("/volumes/{}", "volume")}


def inspect(cli: Cli, argv: list[str], kind: str | None = None) -> int:
    p = parse("inspect", "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information "
              "on Docker objects", INSPECT_OPTS, argv, 1)
    if p is None:
        return 0
    from ..api import APIError

    kinds = [kind or p.type] if (kind or p.type) else list(_KINDS)
    if kinds[0] not in _KINDS:
        raise CommandError(f'"{kinds[0]}" is not a valid value for --type')
    found: list[Any] = []
    failed = False
    for name in p.args:
        for k in kinds:
            try:
                params = {"size": True} if k == "container" and p.size else None
                found.append(cli.client.get(_KINDS[k][0].format(name), params))
                break
            except APIError as exc:
                if exc.status != 404:
                    raise
        else:
            what = kinds[0] if len(kinds) == 1 else "object"
            print(f"Error: No such {what}: {name}", file=sys.stderr)
            failed = True
    if p.format:
        from ..output import prepare, render

        _table, text = prepare(p.format)
        render(text if text != "json" else "{{json .}}", found)
    else:
        import json

        print(json.dumps(found, indent=4, ensure_ascii=False))
    return 1 if failed else 0


def top(cli: Cli, argv: list[str]) -> int:
    p = parse("top", "CONTAINER [ps OPTIONS]", "Display the running processes of a "
              "container", [], argv, 1, interspersed=False)
    if p is None:
        return 0
    params = {"ps_args": " ".join(p.args[1:])} if len(p.args) > 1 else None
    procs = cli.client.get(f"/containers/{p.args[0]}/top", params)
    from ..output import tabwrite

    lines = ["\t".join(procs["Titles"])] + ["\t".join(row) for row in
                                            procs.get("Processes") or []]
    print(tabwrite(lines, minwidth=20))
    return 0


_CHANGE = {0: "C", 1: "A", 2: "D"}


def diff(cli: Cli, argv: list[str]) -> int:
    p = parse("diff", "CONTAINER", "Inspect changes to files or directories on a "
              "container's filesystem", [], argv, 1, 1)
    if p is None:
        return 0
    for change in cli.client.get(f"/containers/{p.args[0]}/changes") or []:
        print(f"{_CHANGE.get(change['Kind'], '?')} {change['Path']}")
    return 0


def port(cli: Cli, argv: list[str]) -> int:
    p = parse("port", "CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a "
              "specific mapping for the container", [], argv, 1, 2)
    if p is None:
        return 0
    info = cli.client.get(f"/containers/{p.args[0]}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if len(p.args) == 2:
        want = p.args[1] if "/" in p.args[1] else p.args[1] + "/tcp"
        bound = ports.get(want)
        if not bound:
            raise CommandError(f"Error: No public port '{want}' published for "
                               f"{p.args[0]}")
        for b in bound:
            print(_host_port(b))
        return 0
    for key in sorted(ports, key=_port_key):
        for b in ports[key] or []:
            print(f"{key} -> {_host_port(b)}")
    return 0


def _port_key(key: str) -> tuple[int, str]:
    number, _, proto = key.partition("/")
    return (int(number) if number.isdigit() else 0, proto)


def _host_port(binding: dict[str, str]) -> str:
    ip = binding.get("HostIp") or "0.0.0.0"
    return f"[{ip}]:{binding['HostPort']}" if ":" in ip else f"{ip}:{binding['HostPort']}"


UPDATE_OPTS = [Opt("blkio-weight", INT), Opt("cpu-period", INT), Opt("cpu-quota", INT),
               Opt("cpu-rt-period", INT), Opt("cpu-rt-runtime", INT),
               Opt("c,cpu-shares", INT), Opt("cpus", STR), Opt("cpuset-cpus", STR),
               Opt("cpuset-mems", STR), Opt("m,memory", STR), Opt("memory-reservation", STR),
               Opt("memory-swap", STR), Opt("kernel-memory", STR), Opt("pids-limit", INT),
               Opt("restart", STR)]


def update(cli: Cli, argv: list[str]) -> int:
    p = parse("update", "[OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of "
              "one or more containers", UPDATE_OPTS, argv, 1)
    if p is None:
        return 0
    if not p.given:
        raise CommandError("you must provide one or more flags when using this command", 1)
    body: dict[str, Any] = {}
    ints = {"blkio_weight": "BlkioWeight", "cpu_period": "CpuPeriod",
            "cpu_quota": "CpuQuota", "cpu_rt_period": "CPURealtimePeriod",
            "cpu_rt_runtime": "CPURealtimeRuntime", "cpu_shares": "CpuShares",
            "pids_limit": "PidsLimit"}
    for dest, key in ints.items():
        if dest in p.given:
            body[key] = p.values[dest]
    for dest, key in (("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems")):
        if dest in p.given:
            body[key] = p.values[dest]
    for dest, key in (("memory", "Memory"), ("memory_reservation", "MemoryReservation"),
                      ("kernel_memory", "KernelMemory")):
        if dest in p.given:
            body[key] = runopts.ram_bytes(p.values[dest], "--" + dest.replace("_", "-"))
    if "memory_swap" in p.given:
        body["MemorySwap"] = -1 if p.memory_swap == "-1" else \
            runopts.ram_bytes(p.memory_swap, "--memory-swap")
    if "cpus" in p.given:
        body["NanoCpus"] = runopts._nano_cpus(p.cpus)
    if "restart" in p.given:
        body["RestartPolicy"] = runopts._restart(p.restart)

    def one(name: str) -> str:
        answer = cli.client.post(f"/containers/{name}/update", None, body) or {}
        for warning in answer.get("Warnings") or []:
            print(warning, file=sys.stderr)
        return name

    return each(p.args, one)


def export(cli: Cli, argv: list[str]) -> int:
    p = parse("export", "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar "
              "archive", [Opt("o,output", STR, "Write to a file, instead of STDOUT")],
              argv, 1, 1)
    if p is None:
        return 0
    response = cli.client.call("GET", f"/containers/{p.args[0]}/export")
    write_stream(response.chunks(), p.output)
    return 0


def write_stream(chunks: Any, output: str | None) -> None:
    """A download to a file (atomically) or to stdout, which must not be a terminal."""
    import os

    if not output:
        if os.isatty(1):
            raise CommandError("cowardly refusing to save to a terminal. Use the -o flag "
                               "or redirect")
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    tmp = f"{output}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


COMMIT_OPTS = [Opt("a,author", STR), Opt("c,change", LIST), Opt("m,message", STR),
               Opt("p,pause", BOOL, default=True), Opt("no-pause")]


def commit(cli: Cli, argv: list[str]) -> int:
    p = parse("commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from "
              "a container's changes", COMMIT_OPTS, argv, 1, 2)
    if p is None:
        return 0
    params: dict[str, Any] = {"container": p.args[0], "comment": p.message,
                              "author": p.author, "pause": p.pause and not p.no_pause,
                              "changes": p.change}
    if len(p.args) == 2:
        from .run import split_reference

        params["repo"], params["tag"] = split_reference(p.args[1])
    print(cli.client.post("/commit", params)["Id"])
    return 0


PRUNE_OPTS = [Opt("f,force", BOOL, "Do not prompt for confirmation"),
              Opt("filter", LIST, "Provide filter values (e.g. \"until=<timestamp>\")")]


def prune(cli: Cli, argv: list[str]) -> int:
    p = parse("container prune", "[OPTIONS]", "Remove all stopped containers", PRUNE_OPTS,
              argv, 0, 0)
    if p is None:
        return 0
    if not confirm("WARNING! This will remove all stopped containers.", p.force):
        return 0
    from ..api import filters_param

    report = cli.client.post("/containers/prune", {"filters": filters_param(p.filter)})
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        print("Deleted Containers:")
        for ident in deleted:
            print(ident)
        print()
    print(f"Total reclaimed space: {humanize.human_size(report.get('SpaceReclaimed', 0))}")
    return 0
