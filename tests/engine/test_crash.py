"""Crash consistency: sampand killed with SIGKILL at random points of pull, build, commit,
create, start and rm, 50 times in one run.

Each operation is timed once first; every kill then comes after a delay drawn uniformly
from that duration (the seed is printed: SAMPAN_CRASH_SEED=<seed> replays a run). After
each restart, `sampan system check --repair` may remove orphans (printed), and must find
no corruption; a second check must then find nothing at all; and the interrupted
operation, run again, succeeds and its result works.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..registry.conftest import Registry, _seed, _start, _stop
from .conftest import DOCKER, FIXTURES
from .spawn import Spawned, spawned

SAMPAN = os.path.join(os.path.dirname(sys.executable), "sampan")
KILLS = {"pull": 9, "build": 9, "commit": 8, "create": 8, "start": 8, "rm": 8}  # 50
if os.environ.get("SAMPAN_CRASH_ONLY"):  # while debugging one operation: its kills only
    KILLS = {k: v for k, v in KILLS.items() if k in os.environ["SAMPAN_CRASH_ONLY"].split(",")}
DOCKERFILE = """FROM busybox
ARG N
RUN echo "$N" > /n && dd if=/dev/zero of=/blob bs=64k count=16 2>/dev/null
COPY file /file
RUN cat /n /file > /both
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    run = tmp_path_factory.mktemp("registry-run")
    reg = _start(run, Path(tmp_path_factory.mktemp("crash-registry")), auth=False)
    try:
        _seed(run, reg, ["layers"])
        yield reg
    finally:
        _stop(run, reg)


def system_check(d: Spawned, *args: str) -> dict[str, object]:
    env = {**d.env, "SAMPAN_HOST": d.host, "SAMPAN_NO_AUTOSTART": "1"}
    proc = subprocess.run([SAMPAN, "system", "check", "--format", "json", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout, (proc.returncode, proc.stderr)
    report: dict[str, object] = json.loads(proc.stdout)
    assert proc.returncode == (1 if report["Errors"] else 0), (proc.returncode, report)
    return report


def assert_consistent(d: Spawned, where: str) -> None:
    """Repair what is safe, print it; no corruption may be found; then nothing at all."""
    report = system_check(d, "--repair")
    findings = report["Findings"]
    assert isinstance(findings, list)
    for f in findings:
        print(f"  [{where}] {f['Severity']} {f['Kind']} {f['Object']}: {f['Detail']} "
              f"({'repaired' if f['Repaired'] else f['RepairError'] or 'not repaired'})")
    errors = [f for f in findings if f["Severity"] == "error"]
    assert not errors, (where, errors, d.log_text())
    again = system_check(d)
    assert again["Clean"], (where, again["Findings"])


@dataclass
class Op:
    """One kind of operation: ``setup`` makes what it needs and returns its docker
    command; ``verify`` checks what it made; ``reset`` undoes it for the next round."""

    name: str
    setup: Callable[[int], list[str]]
    verify: Callable[[int], None]
    reset: Callable[[int], None] = lambda n: None
    duration: float = 0.0
    env: dict[str, str] = field(default_factory=dict)


class Suite:
    def __init__(self, d: Spawned, registry: Registry, context: Path) -> None:
        self.d = d
        self.ref = f"{registry.host}/layers:latest"
        self.context = context
        self.ids: dict[int, str] = {}
        self.ops = {op.name: op for op in (
            Op("pull", lambda n: ["pull", self.ref],
               lambda n: self._runs(self.ref, "test -f /etc/passwd"),
               lambda n: self._quiet("rmi", "-f", self.ref)),
            Op("build", self._build_setup,
               lambda n: self._runs(f"crash-build:{n}", f"grep -qx {n} /n && test -f /file"),
               lambda n: self._quiet("rmi", "-f", f"crash-build:{n}"),
               env={"DOCKER_BUILDKIT": "0"}),
            Op("commit", self._commit_setup,
               lambda n: self._runs(f"crash-commit:{n}", f"grep -qx {n} /changed"),
               lambda n: self._quiet("rmi", "-f", f"crash-commit:{n}")),
            Op("create", lambda n: ["create", "--label", f"crash={n}", "busybox", "sleep",
                                    "600"],
               self._created),
            Op("start", self._start_setup,
               lambda n: self._state(self.ids[n], "running")),
            Op("rm", self._rm_setup,
               lambda n: self._gone(self.ids[n])),
        )}

    # Operations ---------------------------------------------------------------------------

    def _build_setup(self, n: int) -> list[str]:
        return ["build", "-q", "--build-arg", f"N={n}", "-t", f"crash-build:{n}",
                str(self.context)]

    def _commit_setup(self, n: int) -> list[str]:
        cid = self.d.ok("run", "-d", "busybox", "sh", "-c",
                        f"echo {n} > /changed; sleep 600").strip()
        self.ids[n] = cid
        return ["commit", cid, f"crash-commit:{n}"]

    def _start_setup(self, n: int) -> list[str]:
        self.ids[n] = self.d.ok("create", "busybox", "sleep", "600").strip()
        return ["start", self.ids[n]]

    def _rm_setup(self, n: int) -> list[str]:
        self.ids[n] = self.d.ok("run", "-d", "busybox", "sleep", "600").strip()
        return ["rm", "-f", self.ids[n]]

    # Checks -------------------------------------------------------------------------------

    def _runs(self, image: str, script: str) -> None:
        out = self.d.ok("run", "--rm", image, "sh", "-c", f"{script} && echo ok-{os.getpid()}")
        assert out.strip() == f"ok-{os.getpid()}"

    def _created(self, n: int) -> None:
        ids = self.d.ok("ps", "-aq", "--no-trunc", "--filter", f"label=crash={n}").split()
        assert ids, n
        for cid in ids:  # the interrupted create may have finished, and the retry made one
            self._state(cid, "created")

    def _state(self, cid: str, status: str) -> None:
        assert self.d.ok("inspect", "--format", "{{.State.Status}}", cid).strip() == status

    def _gone(self, cid: str) -> None:
        result = self.d.docker("inspect", cid)
        assert result.returncode != 0 and "No such" in result.stderr, result

    def _quiet(self, *args: str) -> None:
        self.d.docker(*args, timeout=120)

    def reset_containers(self) -> None:
        ids = self.d.ok("ps", "-aq").split()
        if ids:
            self.d.ok("rm", "-f", *ids, timeout=120)

    # Running ------------------------------------------------------------------------------

    def popen(self, op: Op, argv: list[str]) -> subprocess.Popen[str]:
        assert DOCKER is not None
        return subprocess.Popen([DOCKER, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**self.d.env, **op.env})

    def once(self, op: Op, n: int) -> float:
        """Run the operation to completion; its duration."""
        argv = op.setup(n)
        began = time.monotonic()
        proc = self.popen(op, argv)
        out, err = proc.communicate(timeout=180)
        took = time.monotonic() - began
        assert proc.returncode == 0, (op.name, argv, out, err)
        op.verify(n)
        return took

    def crash(self, op: Op, n: int, delay: float) -> None:
        argv = op.setup(n)
        proc = self.popen(op, argv)
        time.sleep(delay)
        assert self.d.proc is not None
        self.d.proc.send_signal(signal.SIGKILL)
        self.d.proc.wait(timeout=30)
        proc.communicate(timeout=60)  # the client sees the connection drop (or was done)
        self.d.start()
        assert_consistent(self.d, f"{op.name} #{n} killed after {delay:.3f}s")
        retry = self.popen(op, argv)
        out, err = retry.communicate(timeout=180)
        assert retry.returncode == 0, (op.name, n, argv, out, err, self.d.log_text())
        op.verify(n)


def test_sigkill_at_random_points(registry: Registry, tmp_path: Path) -> None:
    seed = int(os.environ.get("SAMPAN_CRASH_SEED") or random.randrange(1 << 32))
    print(f"\ncrash suite: SAMPAN_CRASH_SEED={seed}")
    rng = random.Random(seed)
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "file").write_text("from the context\n" * 1000)
    with spawned(["--insecure-registry", registry.host]) as d:
        d.start()
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        suite = Suite(d, registry, context)
        round_no = 0
        for op in suite.ops.values():  # measure each operation once, undisturbed
            round_no += 1
            op.duration = suite.once(op, round_no)
            op.reset(round_no)
            suite.reset_containers()
            print(f"  {op.name}: {op.duration:.3f}s undisturbed")
        plan = [name for name, count in KILLS.items() for _ in range(count)]
        rng.shuffle(plan)
        began = time.monotonic()
        for name in plan:
            op = suite.ops[name]
            round_no += 1
            delay = rng.uniform(0, op.duration)
            print(f"kill {round_no - len(suite.ops)}/{len(plan)}: {name} #{round_no} "
                  f"after {delay:.3f}s")
            suite.crash(op, round_no, delay)
            op.reset(round_no)
            suite.reset_containers()
        print(f"{len(plan)} kills in {time.monotonic() - began:.1f}s")
        assert_consistent(d, "end")
