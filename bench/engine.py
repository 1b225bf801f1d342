"""The engine's benchmarks beside dockerd and podman, as ratios taken in one run (issue 8).

    .venv/bin/python bench/engine.py [--reps N] [--case start] [--case throughput]
                                     [--case footprint] [--case scale] [--scale 1,100,500]

Each daemon runs in a network namespace of its own (``ip netns add``; dockerd's docker0
and iptables rules, sampand's bridge and nft table all live and die there), on its own
socket and directories, with the busybox fixture loaded. The same docker CLI (v28) drives
sampand and dockerd, so the client's cost is the same on both sides; podman is its own
client (with runc: crun refuses this host's cgroup layout); the `sampan` CLI, when
installed, is a contender of its own.

- start: ``run --rm busybox true`` end to end, ``--network none`` and the default network;
- throughput: 50 ``run -d busybox sleep`` started at once, containers per second;
- footprint: idle RSS of the daemon (dockerd counts containerd), memory per running idle
  container (monitor + daemon growth; conmon beside containerd-shim), disk used by 20
  containers of one image;
- scale: start latency and daemon RSS with 1, 100, 500 containers running.

Results go to bench/results-engine.md and .json. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from run import ROOT, VENV_BIN, Result, interleave, write_report
from tests.images.dockerd import private_dockerd

FIXTURES = os.path.join(os.path.dirname(ROOT), "shared", "fixtures", "images")
BUSYBOX = os.path.join(FIXTURES, "busybox.docker.tar")
DOCKER = shutil.which("docker", path="/usr/local/bin") or "docker"  # the v28 client
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=20000:20000"]

Client = list[str]


def _quiet(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


@contextlib.contextmanager
def netns(name: str) -> Iterator[str]:
    _quiet("ip", "netns", "add", name)
    try:
        _quiet("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        _quiet("ip", "netns", "del", name, check=False)


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _pids(match: Callable[[str, bytes], bool]) -> list[int]:
    """Processes whose (comm, cmdline) ``match``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            if match(comm, cmdline):
                found.append(int(entry))
    return found


class Engine:
    """One daemon under test: how to drive it and what its processes are."""

    def __init__(self, name: str, client: Client, daemon_pids: Callable[[], list[int]],
                 monitor_pids: Callable[[], list[int]], data_root: str,
                 run_flags: tuple[str, ...] = ()) -> None:
        self.name = name
        self.client = client
        self.daemon_pids = daemon_pids
        self.monitor_pids = monitor_pids
        self.data_root = data_root
        self.run_flags = list(run_flags)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _quiet(*self.client, *args, check=check)

    def run_rm(self, *flags: str) -> Callable[[], None]:
        argv = [*self.client, "run", "--rm", *self.run_flags, *flags, "busybox", "true"]

        def go() -> None:
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return go

    def works(self, *flags: str) -> bool:
        return self("run", "--rm", *self.run_flags, *flags, "busybox", "true",
                    check=False).returncode == 0

    def remove_all(self) -> None:
        ids = self("ps", "-aq", check=False).stdout.split()
        for i in range(0, len(ids), 50):
            self("rm", "-f", *ids[i:i + 50], check=False)


def _uss_kib(pids: list[int]) -> int:
    """Memory that is the processes' own (private pages, from smaps_rollup): fair to forked
    monitors, whose RSS counts the pages they share with the helper they came from."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    return total


@contextlib.contextmanager
def sampand(work: str, ns: str, client: Client | None = None,
            monitor: str = "sampan") -> Iterator[Engine]:
    base = os.path.join(work, f"sampand-{monitor}")
    os.makedirs(base)
    sock = os.path.join(base, "sampand.sock")
    cgroup_parent = f"/sampan-bench-{os.getpid()}"
    with open(os.path.join(base, "sampand.log"), "wb") as log:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", os.path.join(VENV_BIN, "sampand"),
             "-H", f"unix://{sock}", "--data-root", f"{base}/data", "--exec-root",
             f"{base}/exec", "--cgroup-parent", f"{cgroup_parent}-{monitor}",
             "--monitor", monitor],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    argv = client or [DOCKER, "-H", f"unix://{sock}"]
    env_client = argv if client is None else [DOCKER, "-H", f"unix://{sock}"]
    try:
        ready(env_client, proc, base)
        if monitor == "conmon":
            monitors = lambda: _pids(lambda comm, cmd: comm == "conmon"  # noqa: E731
                                     and base.encode() in cmd)
        else:  # the warm monitors (named so; the helper is "sampan-warm")
            monitors = lambda: _pids(lambda comm, cmd: comm == "sampan-monitor"  # noqa: E731
                                     and base.encode() in cmd)
        engine = Engine(f"sampand --monitor={monitor}",
                        argv, lambda: [proc.pid], monitors, f"{base}/data")
        yield engine
        engine.remove_all()
    finally:
        stop(proc)
        for pid in _pids(lambda comm, cmd: base.encode() in cmd):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _unmount_under(base)


def ready(client: list[str], proc: subprocess.Popen[bytes], where: str) -> None:
    """Wait until a just-started sampand answers, then load the busybox fixture."""
    deadline = time.monotonic() + 30
    while _quiet(*client, "version", check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("sampand did not start: see " + where)
        time.sleep(0.1)
    _quiet(*client, "load", "-i", BUSYBOX)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _unmount_under(base: str) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(base)]
    for point in sorted(points, key=len, reverse=True):
        _quiet("umount", "-l", point, check=False)


@contextlib.contextmanager
def dockerd(work: str, ns: str) -> Iterator[Engine]:
    namespace = f"sampan-{os.getpid()}"
    with private_dockerd(work, netns=ns, client=DOCKER) as client:
        base = os.path.join(work, "docker")
        with open(f"{base}/dockerd.pid") as f:
            pid = int(f.read())
        _quiet(*client, "load", "-i", BUSYBOX)

        def daemon_pids() -> list[int]:
            return [pid, *_pids(lambda comm, cmd: comm == "containerd"
                                and base.encode() in cmd)]

        engine = Engine("dockerd", client, daemon_pids,
                        lambda: _pids(lambda comm, cmd: comm.startswith("containerd-shim")
                                      and namespace.encode() in cmd), f"{base}/data")
        yield engine
        engine.remove_all()


@contextlib.contextmanager
def podman(work: str, ns: str) -> Iterator[Engine]:
    base = os.path.join(work, "podman")
    os.makedirs(base)
    client = ["nsenter", f"--net=/run/netns/{ns}", "podman", "--root", f"{base}/storage",
              "--runroot", f"{base}/run", "--tmpdir", f"{base}/tmp", "--cgroup-manager",
              "cgroupfs", "--events-backend", "none", "--runtime", "runc",
              "--storage-driver", "overlay"]
    _quiet(*client, "load", "-i", BUSYBOX)
    engine = Engine("podman", client, lambda: [],
                    lambda: _pids(lambda comm, cmd: comm == "conmon"
                                  and base.encode() in cmd), f"{base}/storage",
                    tuple(ULIMITS))
    try:
        yield engine
    finally:
        engine.remove_all()
        _quiet(*client, "system", "reset", "--force", check=False)
        _unmount_under(base)


# Cases ------------------------------------------------------------------------------------

def case_start(engines: list[Engine], reps: int) -> list[Result]:
    results = []
    for label, flags in (("--network none", ("--network", "none")), ("default network", ())):
        results += interleave(f"run --rm busybox true, {label}",
                              {_label(e): e.run_rm(*flags) for e in engines
                               if e.works(*flags)}, reps)
    return results


def _label(e: Engine) -> str:
    if e.name.startswith("sampan "):
        return e.name.replace("sampan ", "sampan CLI → sampand ", 1)
    return e.name if e.name == "podman" else f"{e.name} via docker CLI"


def case_throughput(engines: list[Engine], reps: int, count: int = 50) -> list[Result]:
    def burst(e: Engine) -> Callable[[], None]:
        def go() -> None:
            with ThreadPoolExecutor(count) as pool:
                list(pool.map(lambda _: e("run", "-d", *e.run_flags, "--network", "none",
                                          "busybox", "sleep", "600"), range(count)))
        return go

    contenders: dict[str, Callable[[], None]] = {}
    for e in engines:
        contenders[_label(e)] = burst(e)
        contenders[f"_reset {e.name}"] = e.remove_all
    rows = interleave(f"{count} containers run -d at once (ms for all)", contenders,
                      max(3, reps // 10), warmup=0)
    return [r for r in rows if not r.contender.startswith("_reset")]


def footprint(engines: list[Engine], idle: int = 10, disk: int = 20) -> list[str]:
    lines = ["", "| footprint | " + " | ".join(_label(e) for e in engines) + " |",
             "|---|" + "---|" * len(engines)]
    idle_rss, per_container, per_disk, per_monitor = [], [], [], []
    for e in engines:
        time.sleep(1)
        before = _rss_kib(e.daemon_pids())
        idle_rss.append(f"{before / 1024:.1f} MiB" if e.daemon_pids() else "(no daemon)")
        for _ in range(idle):
            e("run", "-d", *e.run_flags, "--network", "none", "busybox", "sleep", "600")
        time.sleep(1)
        grown = _rss_kib(e.daemon_pids()) - before + _uss_kib(e.monitor_pids())
        per_container.append(f"{grown / idle / 1024:.2f} MiB")
        monitors = e.monitor_pids()
        per_monitor.append(f"{_uss_kib(monitors) / max(1, len(monitors)) / 1024:.2f} MiB")
        e.remove_all()
        used = _du(e.data_root)
        for _ in range(disk):
            e("create", *e.run_flags, "--network", "none", "busybox", "true")
        per_disk.append(f"{(_du(e.data_root) - used) / disk:.0f} KiB")
        e.remove_all()
    lines.append("| daemon idle RSS | " + " | ".join(idle_rss) + " |")
    lines.append(f"| memory per idle container ({idle} running: daemon growth + monitor USS) | "
                 + " | ".join(per_container) + " |")
    lines.append("| USS per monitor (conmon, shim or sampan's) | " + " | ".join(per_monitor)
                 + " |")
    lines.append(f"| disk per created container ({disk}) | " + " | ".join(per_disk) + " |")
    return lines


def _du(path: str) -> int:
    out = _quiet("du", "-skx", path, check=False).stdout.split()
    return int(out[0]) if out else 0


def scale(engines: list[Engine], steps: list[int], reps: int) -> tuple[list[Result], list[str]]:
    results: list[Result] = []
    lines = ["", "| running containers | " + " | ".join(f"{_label(e)} RSS" for e in engines)
             + " |", "|---|" + "---|" * len(engines)]
    running = 0
    for step in steps:
        for e in engines:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _, e=e: e("run", "-d", *e.run_flags, "--network",
                                               "none", "busybox", "sleep", "3600"),
                              range(step - running)))
        running = step
        results += interleave(f"run --rm, --network none, {step} running",
                              {_label(e): e.run_rm("--network", "none") for e in engines},
                              max(5, reps // 3), warmup=1)
        lines.append(f"| {step} | " + " | ".join(
            f"{_rss_kib(e.daemon_pids()) / 1024:.1f} MiB" for e in engines) + " |")
    return results, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--case", action="append",
                        choices=["start", "throughput", "footprint", "scale"])
    parser.add_argument("--scale", default="1,100,500")
    parser.add_argument("--monitor", action="append", choices=["conmon", "sampan"],
                        help="sampand's --monitor (each one a daemon of its own); "
                             "default: both")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the engine benchmarks start daemons: run as root", file=sys.stderr)
        return 1
    cases = args.case or ["start", "throughput", "footprint"]
    args.monitor = args.monitor or ["sampan", "conmon"]
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "src")],
                   check=True, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="sampan-bench-engine-")
    tag = str(os.getpid())
    results: list[Result] = []
    extra: list[str] = []
    try:
        with contextlib.ExitStack() as stack:
            engines = [stack.enter_context(sampand(work, stack.enter_context(
                netns(f"sb-sampan-{tag}-{m[0]}")), monitor=m)) for m in args.monitor]
            cli = os.path.join(VENV_BIN, "sampan")
            if os.access(cli, os.X_OK):
                sock = os.path.join(work, f"sampand-{args.monitor[0]}", "sampand.sock")
                first = args.monitor[0]
                with_cli = Engine(f"sampan --monitor={first}",
                                  [cli, "-H", f"unix://{sock}"],
                                  engines[0].daemon_pids, engines[0].monitor_pids,
                                  engines[0].data_root)
                engines.append(with_cli)
            engines.append(stack.enter_context(dockerd(work, stack.enter_context(
                netns(f"sb-docker-{tag}")))))
            engines.append(stack.enter_context(podman(work, stack.enter_context(
                netns(f"sb-podman-{tag}")))))
            daemons = [e for e in engines if not e.client[0].endswith("/sampan")]
            if "start" in cases:
                results += case_start(engines, args.reps)
            if "throughput" in cases:
                results += case_throughput(daemons, args.reps)
            if "footprint" in cases:
                extra += footprint(daemons)
            if "scale" in cases:
                rows, lines = scale([e for e in daemons if e.name != "podman"],
                                    [int(n) for n in args.scale.split(",")], args.reps)
                results += rows
                extra += lines
    finally:
        shutil.rmtree(work, ignore_errors=True)
    phases = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results-phases.md")
    if os.path.exists(phases):  # bench/phases.py's breakdown, from its latest run
        with open(phases) as f:
            extra += ["", "Where one `run --rm --network none busybox true` spends its time "
                      "in sampand (bench/phases.py, its latest run):", "", f.read()]
    write_report(results, "results-engine", "\n".join(extra) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
