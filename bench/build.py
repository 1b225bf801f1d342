"""Dockerfile builds beside dockerd's classic builder, as ratios taken in one run (issue 7,
check 5).

    .venv/bin/python bench/build.py [--reps N]

Both engines build the same context (tests/build/contexts.py) and Dockerfile
(tests/build/dockerfiles/multistage.Dockerfile, target ``final``: RUN, COPY, COPY --from,
ADD with extraction, config steps) from the busybox fixture, with the same docker CLI and
DOCKER_BUILDKIT=0:

- cold: ``--no-cache`` (every step runs; the base image is already there);
- no-change rebuild: the same build again, every step from the cache.

sampand and dockerd 20.10 run on their own temporary directories and are stopped by pid.
Contenders run A/B interleaved (bench/run.py's ``interleave``). Results go to
bench/results-build.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from run import Result, interleave
from tests.build.contexts import make_context
from tests.engine.conftest import (
    FIXTURES,
    Daemon,
    _monitors_of,
    _mounts_under,
    _remove_cgroups,
)
from tests.images.dockerd import private_dockerd

HERE = os.path.dirname(os.path.abspath(__file__))


@contextmanager
def sampand(work: str) -> Iterator[list[str]]:
    """A sampand of its own under ``work``; the docker command line that talks to it."""
    daemon = Daemon(os.path.join(work, "sampand"))
    os.makedirs(daemon.base)
    try:
        daemon.start()
        yield ["docker", "-H", daemon.host]
    finally:
        daemon.stop()
        for pid in _monitors_of(daemon.base):
            with suppress(ProcessLookupError):
                os.kill(pid, 9)
        for point in _mounts_under(daemon.base):
            subprocess.run(["umount", "-l", point], check=False)
        _remove_cgroups(daemon.cgroup_parent)


def _run(client: list[str], *args: str) -> None:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_HOST", None)
    subprocess.run([*client, *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env)


def _build(client: list[str], context: Path, *extra: str) -> Callable[[], None]:
    return lambda: _run(client, "build", "-t", "bench:build", "--target", "final", *extra,
                        str(context))


def report(results: list[Result], load: tuple[float, float]) -> None:
    lines = [f"Machine: {platform.node()}, {os.cpu_count()} CPUs; load average (1 min) "
             f"{load[0]:.1f} before, {load[1]:.1f} after (other work on the machine skews "
             "both contenders' times; compare the ratios).", "",
             "| case | contender | median (ms) | IQR (ms) | n | sampan / dockerd |",
             "|---|---|---|---|---|---|"]
    by_case: dict[str, list[Result]] = {}
    for r in results:
        by_case.setdefault(r.case, []).append(r)
    for case, rows in by_case.items():
        ours = next(r for r in rows if r.contender == "sampand")
        theirs = next(r for r in rows if r.contender != "sampand")
        for r in rows:
            ratio = f"{ours.median_ms / theirs.median_ms:.2f}×" if r is ours else ""  # noqa: RUF001
            lines.append(f"| {case} | {r.contender} | {r.median_ms} | {r.iqr_ms} | "
                         f"{r.samples} | {ratio} |")
    with open(os.path.join(HERE, "results-build.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the build benchmark starts sampand and dockerd: run it as root", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="sampan-bench-build-")
    try:
        context = make_context(Path(work), "multistage.Dockerfile")
        with sampand(work) as ours, private_dockerd(work) as theirs:
            for client in (ours, theirs):
                _run(client, "load", "-i", str(FIXTURES / "busybox.docker.tar"))
            results = interleave("cold build (--no-cache)", {
                "sampand": _build(ours, context, "--no-cache"),
                "dockerd 20.10 classic": _build(theirs, context, "--no-cache")}, args.reps, 1)
            results += interleave("no-change rebuild", {
                "sampand": _build(ours, context),
                "dockerd 20.10 classic": _build(theirs, context)}, args.reps, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, (load_before, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
