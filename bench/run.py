"""sampan's benchmarks, side by side with the peers, as ratios taken in one run.

    .venv/bin/python bench/run.py [--reps N] [--case runtime]

Each case runs the contenders interleaved, forwards then backwards (a, b, b, a, a, b, ...),
so that drift on the machine (CPU steal, page cache) hits both alike and what one run
leaves behind for the next (a warmed kernel lock, a network namespace still being torn
down) favours neither, then reports medians, the spread (interquartile range) and the
ratio sampan/peer. Results go to bench/results.md and
bench/results.json. Never part of the test suite: timings are not assertions.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
sys.path.insert(0, ROOT)


@dataclass
class Result:
    case: str
    contender: str
    median_ms: float
    iqr_ms: float
    samples: int


def _quantiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=4)
    return statistics.median(samples), q[2] - q[0]


def interleave(case: str, contenders: Mapping[str, Callable[[], object]], reps: int,
               warmup: int = 2) -> list[Result]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    names = list(contenders)
    for rep in range(reps):
        # With a fixed order runc always ran right after sampan-runtime, and what a run
        # leaves behind carries over unequally: fixed order 1.01x, reversed 0.99x, this
        # order 0.95x, blocks of ten runs of each 0.92x, in one hour (README).
        for name in names if rep % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append((time.perf_counter() - t0) * 1000)
    out = []
    for name, samples in times.items():
        median, iqr = _quantiles(samples)
        out.append(Result(case, name, round(median, 2), round(iqr, 2), len(samples)))
    return out


def _true_bundle(path: str, cgroups_path: str) -> None:
    """A busybox bundle at ``path`` whose process is /bin/true."""
    from tests.runtime.helpers import default_spec, make_rootfs

    make_rootfs(os.path.join(path, "rootfs"))
    spec = default_spec()
    spec["process"]["args"] = ["/bin/true"]
    spec["linux"]["cgroupsPath"] = cgroups_path
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(spec, f)


def case_runtime(reps: int) -> list[Result]:
    """`run` of one busybox bundle running /bin/true: sampan-runtime vs runc (and crun)."""
    tmp = tempfile.mkdtemp(prefix="sampan-bench-")
    try:
        _true_bundle(tmp, "sampan-bench")
        counter = iter(range(10**9))

        def runner(binary: str, root: str) -> Callable[[], None]:
            def go() -> None:
                cid = f"bench{next(counter)}"
                subprocess.run([binary, "--root", root, "run", "--bundle", tmp, cid],
                               check=True, stdout=subprocess.DEVNULL)
            return go

        contenders = {
            "sampan-runtime": runner(os.path.join(VENV_BIN, "sampan-runtime"),
                                     os.path.join(tmp, "state-sampan")),
            "runc": runner("runc", os.path.join(tmp, "state-runc")),
        }
        crun = shutil.which("crun")
        if crun and subprocess.run([crun, "--root", os.path.join(tmp, "state-crun"), "run",
                                    "--bundle", tmp, "probe"],
                                   capture_output=True).returncode == 0:
            contenders["crun"] = runner(crun, os.path.join(tmp, "state-crun"))
        return interleave("runtime: run busybox /bin/true", contenders, reps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_runtime_state(reps: int) -> list[Result]:
    """`state` of one created container (what podman and conmon ask again and again)."""
    tmp = tempfile.mkdtemp(prefix="sampan-bench-")
    runtimes = {"sampan-runtime": os.path.join(VENV_BIN, "sampan-runtime"), "runc": "runc"}
    try:
        _true_bundle(tmp, "sampan-bench-state")
        contenders = {}
        for name, binary in runtimes.items():
            argv = [binary, "--root", os.path.join(tmp, f"state-{name}")]
            subprocess.run([*argv, "create", "--bundle", tmp, "probe"], check=True,
                           stdout=subprocess.DEVNULL)
            contenders[name] = functools.partial(
                subprocess.run, [*argv, "state", "probe"], check=True,
                stdout=subprocess.DEVNULL)
        return interleave("runtime: state of a created container", contenders, reps)
    finally:
        for name, binary in runtimes.items():
            subprocess.run([binary, "--root", os.path.join(tmp, f"state-{name}"), "delete",
                            "--force", "probe"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


CASES = {"runtime": case_runtime, "runtime-state": case_runtime_state}


def write_report(results: list[Result], name: str = "results", extra_md: str = "",
                 extra_json: dict[str, object] | None = None) -> None:
    """``<name>.md`` (the table of medians and ratios, then ``extra_md``) and ``<name>.json``."""
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
        json.dump({"machine": platform.node(), "cpus": os.cpu_count(),
                   "results": [asdict(r) for r in results], **(extra_json or {})}, f, indent=2)
    lines = ["| case | contender | median (ms) | IQR (ms) | n | sampan / this |",
             "|---|---|---|---|---|---|"]
    by_case: dict[str, list[Result]] = {}
    for r in results:
        by_case.setdefault(r.case, []).append(r)
    for case, rows in by_case.items():
        ours = next((r for r in rows if r.contender.startswith("sampan")), None)
        for r in rows:
            ratio = f"{ours.median_ms / r.median_ms:.2f}×" if ours and r is not ours else ""  # noqa: RUF001
            lines.append(f"| {case} | {r.contender} | {r.median_ms} | {r.iqr_ms} | "
                         f"{r.samples} | {ratio} |")
    text = "\n".join(lines) + "\n" + extra_md
    with open(os.path.join(HERE, f"{name}.md"), "w") as f:
        f.write(text)
    print(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks start containers: run as root", file=sys.stderr)
        return 1
    # The runtime is measured as installed: byte-compiled (install.sh does the same), even
    # when PYTHONDONTWRITEBYTECODE keeps the interpreter from writing .pyc files itself.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "src")],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "sampan.bundle"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)  # (and the runtime's bundle, as install.sh)
    results: list[Result] = []
    for name in args.case or sorted(CASES):
        results += CASES[name](args.reps)
    write_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
