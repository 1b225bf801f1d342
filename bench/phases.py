"""Where `docker run --rm busybox true` spends its time in sampand, phase by phase.

    .venv/bin/python bench/phases.py [--reps N] [--network none|default]

Runs sampand in its own network namespace with timing hooks wrapped around the engine's
steps (each API request, conmon's launch, the runtime's ``create`` as conmon runs it, the
in-process ``start``, the exit handling, the teardown and the AutoRemove), drives it with
the docker CLI and prints the median of each phase. The runtime's ``create`` is timed by
a bash wrapper (EPOCHREALTIME) named ``sampan-runtime``, which adds about 2 ms to it.
A measuring tool, not a benchmark: the hooks themselves cost a little.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from run import HERE, ROOT, VENV_BIN

from engine import DOCKER, _unmount_under, netns, ready, stop

WRAPPER = """#!/bin/bash
case "$*" in *" create "*) echo "{\\"ev\\": \\"runtime-create-exec\\", \\"t\\": $EPOCHREALTIME}" \
>> %(log)s;; esac
%(real)s "$@"
rc=$?
case "$*" in *" create "*) echo "{\\"ev\\": \\"runtime-create-exit\\", \\"t\\": $EPOCHREALTIME}" \
>> %(log)s;; esac
exit $rc
"""


def serve(log_path: str, argv: list[str]) -> int:
    """sampand in this process, with its steps timed into ``log_path`` (JSON lines)."""
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from aiohttp import web

    import sampan.api
    from sampan.cli import daemon
    from sampan.engine import containers, monitor, networking, ociruntime, store
    from sampan.snapshots import base as snapshots

    out = open(log_path, "a", buffering=1)  # noqa: SIM115

    def note(ev: str, **extra: Any) -> None:
        out.write(json.dumps({"ev": ev, "t": time.time(), **extra}) + "\n")

    def timed_async(owner: Any, name: str, label: str = "") -> None:
        real = getattr(owner, name)
        label = label or name

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            note(f"{label}-begin")
            try:
                return await real(*args, **kwargs)
            finally:
                note(f"{label}-end")
        setattr(owner, name, wrapper)

    def timed(owner: Any, name: str, label: str = "") -> None:
        real = getattr(owner, name)
        label = label or name

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            note(f"{label}-begin")
            try:
                return real(*args, **kwargs)
            finally:
                note(f"{label}-end")
        setattr(owner, name, wrapper)

    for name in ("_start", "_exited", "_teardown", "remove"):
        timed_async(containers.Containers, name)
    for name in ("start", "delete"):
        timed_async(ociruntime.OCIRuntime, name)
    for name in ("release", "forget"):
        timed(networking.Networking, name)
    timed(containers, "unmount_all")
    from sampan.engine import logs, mounts
    timed(logs.Shipper, "ship")
    timed(store.ContainerStore, "save", "ContainerStore.save")
    timed(mounts.Mounts, "teardown", "Mounts.teardown")
    timed(monitor, "clear")
    timed(networking.Networking, "prepare", "Networking.prepare")
    timed(networking.br, "attach", "br.attach")
    timed(networking.netns, "create", "netns.create")
    timed(containers, "build_spec")
    timed(containers, "mount_all")
    timed(store.ContainerStore, "remove", "ContainerStore.remove")
    timed(snapshots.Snapshotter, "remove", "Snapshotter.remove")
    timed(monitor, "launch")
    real_on_exit = monitor.on_exit

    def on_exit(pid: int, callback: Any) -> Any:
        def fired() -> None:
            note("monitor-exit-seen")
            callback()
        return real_on_exit(pid, fired)
    monitor.on_exit = on_exit
    containers.monitor.on_exit = on_exit

    @web.middleware
    async def requests(request: web.Request, handler: Any) -> Any:
        path = request.path.split("/")[-1] if "/containers/" in request.path else request.path
        note("request-begin", path=f"{request.method} {path}")
        try:
            return await handler(request)
        finally:
            note("request-end", path=f"{request.method} {path}")

    real_make_app = sampan.api.make_app

    def make_app(engine: Any) -> web.Application:
        app = real_make_app(engine)
        app.middlewares.insert(0, requests)
        return app
    sampan.api.make_app = make_app
    return daemon.main(argv)


def _phases(events: list[dict[str, Any]], t0: float, t1: float) -> dict[str, float]:
    """One run's phases in ms, from the events between the CLI's start and end."""
    firsts: dict[str, float] = {}
    for e in events:
        if t0 <= e["t"] <= t1:
            key = e["ev"] + (":" + e["path"] if "path" in e else "")
            firsts.setdefault(key, e["t"])

    def span(a: str, b: str) -> float:
        return round((firsts[b] - firsts[a]) * 1000, 2) if a in firsts and b in firsts \
            else float("nan")
    create = "request-begin:POST create"
    start = "request-begin:POST start"
    return {
        "CLI start-up → POST create": round((firsts.get(create, t0) - t0) * 1000, 2),
        "POST create (handler)": span(create, "request-end:POST create"),
        "create → POST start (attach, wait requests)": span("request-end:POST create", start),
        "start: before conmon (mount, network, spec)": span(start, "launch-begin"),
        "  mount_all": span("mount_all-begin", "mount_all-end"),
        "  network prepare": span("Networking.prepare-begin", "Networking.prepare-end"),
        "    netns create": span("netns.create-begin", "netns.create-end"),
        "    veth attach": span("br.attach-begin", "br.attach-end"),
        "  build_spec": span("build_spec-begin", "build_spec-end"),
        "launch: monitor + runtime create, in all": span("launch-begin", "launch-end"),
        "  conmon fork → runtime create exec": span("launch-begin", "runtime-create-exec"),
        "  runtime create (fresh interpreter)": span("runtime-create-exec",
                                                   "runtime-create-exit"),
        "  runtime exit → conmon reports pid": span("runtime-create-exit", "launch-end"),
        "launch → in-process runtime start": span("launch-end", "start-begin"),
        "runtime start (in-process)": span("start-begin", "start-end"),
        "start end → POST start answered": span("start-end", "request-end:POST start"),
        "start answered → conmon exit seen": span("request-end:POST start",
                                                  "monitor-exit-seen"),
        "exit handling (teardown: delete, unmount)": span("_exited-begin", "_exited-end"),
        "  log shipping": span("ship-begin", "ship-end"),
        "  teardown in all": span("_teardown-begin", "_teardown-end"),
        "  runtime delete": span("delete-begin", "delete-end"),
        "  monitor clear": span("clear-begin", "clear-end"),
        "  volumes teardown": span("Mounts.teardown-begin", "Mounts.teardown-end"),
        "  record save": span("ContainerStore.save-begin", "ContainerStore.save-end"),
        "  network release": span("release-begin", "release-end"),
        "  rootfs unmount": span("unmount_all-begin", "unmount_all-end"),
        "AutoRemove (remove)": span("remove-begin", "remove-end"),
        "  snapshot remove": span("Snapshotter.remove-begin", "Snapshotter.remove-end"),
        "  network forget": span("forget-begin", "forget-end"),
        "  record remove": span("ContainerStore.remove-begin", "ContainerStore.remove-end"),
        "remove end → CLI exits": round((t1 - firsts.get("remove-end", t1)) * 1000, 2),
        "total (CLI)": round((t1 - t0) * 1000, 2),
    }


@contextlib.contextmanager
def traced(monitor: str) -> Iterator[tuple[list[str], str]]:
    """A sampand with timing hooks in a network namespace of its own: (client, event log)."""
    work = tempfile.mkdtemp(prefix=f"sampan-phases-{monitor}-")
    log_path = os.path.join(work, "events.jsonl")
    wrap = os.path.join(work, "wrap")
    os.makedirs(wrap)
    runtime = os.path.join(wrap, "sampan-runtime")
    with open(runtime, "w") as f:
        f.write(WRAPPER % {"log": log_path, "real": os.path.join(VENV_BIN, "sampan-runtime")})
    os.chmod(runtime, 0o755)
    sock = os.path.join(work, "sampand.sock")
    client = [DOCKER, "-H", f"unix://{sock}"]
    try:
        with netns(f"sb-phases-{os.getpid()}-{monitor[0]}") as ns, \
                open(os.path.join(work, "sampand.log"), "wb") as dlog:
            daemon_argv = ["-H", f"unix://{sock}", "--data-root", f"{work}/data",
                           "--exec-root", f"{work}/exec", "--cgroup-parent",
                           f"/sampan-phases-{os.getpid()}-{monitor}", "--add-runtime",
                           f"traced={runtime}", "--default-runtime", "traced",
                           "--monitor", monitor]
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{ns}", sys.executable, __file__, "--serve",
                 log_path, *daemon_argv], stdout=dlog, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                ready(client, proc, work)
                yield client, log_path
            finally:
                stop(proc)
                _unmount_under(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(monitors: list[str], network: str, reps: int) -> dict[str, list[dict[str, float]]]:
    """``reps`` timed runs per monitor, A/B interleaved after two warm-up runs each."""
    flags = ["--network", "none"] if network == "none" else []
    runs: dict[str, list[tuple[float, float]]] = {m: [] for m in monitors}
    out: dict[str, list[dict[str, float]]] = {}
    with contextlib.ExitStack() as stack:
        daemons = {m: stack.enter_context(traced(m)) for m in monitors}
        for i in range(reps + 2):
            for m, (client, _) in daemons.items():
                t0 = time.time()
                subprocess.run([*client, "run", "--rm", *flags, "busybox", "true"],
                               check=True, stdout=subprocess.DEVNULL)
                t1 = time.time()
                if i >= 2:  # two warm-up runs
                    runs[m].append((t0, t1))
                time.sleep(0.2)  # let the daemon settle between runs
        for m, (_, log_path) in daemons.items():
            with open(log_path) as f:
                events = [json.loads(line) for line in f if line.strip()]
            out[m] = [_phases(events, t0, t1) for t0, t1 in runs[m]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--network", default="none", choices=("none", "default"))
    parser.add_argument("--monitor", action="append", choices=("conmon", "sampan"),
                        help="sampand's --monitor (default: both)")
    parser.add_argument("--serve", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve[0], args.serve[1:])
    monitors = args.monitor or ["conmon", "sampan"]
    table = measure(monitors, args.network, args.reps)
    lines = [f"| phase ({args.network} network, median of {args.reps}, A/B interleaved, ms) | "
             + " | ".join(f"--monitor={m}" for m in monitors) + " |",
             "|---|" + "---|" * len(monitors)]
    for key in table[monitors[0]][0]:
        cells = []
        for m in monitors:
            values = [r[key] for r in table[m] if r[key] == r[key]]
            cells.append(f"{statistics.median(values):.1f}" if values else "")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(HERE, "results-phases.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
