"""Bridge-network throughput beside dockerd, with iperf3 (issue 5, check 5).

    .venv/bin/python bench/network.py [--reps N] [--seconds S]

Each daemon runs in a network namespace of its own (as in bench/engine.py) with two busybox
containers on its default bridge network, one of them publishing port 5201. iperf3 (the
host's binary) runs inside the containers' network namespaces through nsenter, so the
traffic takes the path a containerised iperf3 would: veth, bridge, and for the published
port the daemon's DNAT (sampand) or docker-proxy/DNAT (dockerd).

- container → container over the bridge;
- daemon's host → the published port on 127.0.0.1.

Runs alternate between the daemons; results (median Gbit/s, ratio sampan/dockerd) go to
bench/results-network.md and .json.
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

from run import HERE

from engine import Engine, dockerd, netns, sampand

PORT = 5201
PUBLISHED = 15201


@contextlib.contextmanager
def pair(e: Engine) -> Iterator[tuple[int, str, int]]:
    """A server container (publishing PORT) and a client one: (server pid, server address,
    client pid)."""
    server = e("run", "-d", "-p", f"127.0.0.1:{PUBLISHED}:{PORT}", "busybox", "sleep",
               "600").stdout.strip()
    client = e("run", "-d", "busybox", "sleep", "600").stdout.strip()
    try:
        fmt = "{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        spid, address = e("inspect", "-f", fmt, server).stdout.split()
        cpid = e("inspect", "-f", "{{.State.Pid}}", client).stdout.strip()
        yield int(spid), address, int(cpid)
    finally:
        e("rm", "-f", server, client, check=False)


def iperf(server_pid: int, client_ns: list[str], address: str, port: int,
          seconds: int) -> float:
    """Gbit/s received by a one-off iperf3 server in ``server_pid``'s network namespace
    from a client entered through ``client_ns``."""
    server = subprocess.Popen(["nsenter", f"--net=/proc/{server_pid}/ns/net", "iperf3", "-s",
                               "-1", "-p", str(PORT)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = subprocess.run([*client_ns, "iperf3", "-c", address, "-p", str(port), "-t",
                              str(seconds), "-J"], capture_output=True, text=True, check=True)
        return float(json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        server.wait(timeout=seconds + 10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("iperf3") is None:
        print("run as root, with iperf3 installed (scripts/install.sh)", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="sampan-bench-net-")
    tag = str(os.getpid())
    rates: dict[tuple[str, str], list[float]] = {}
    try:
        with contextlib.ExitStack() as stack:
            daemons = []
            for name, start in (("sampand", sampand), ("dockerd", dockerd)):
                ns = stack.enter_context(netns(f"sb-{name[:6]}-{tag}"))
                engine = stack.enter_context(start(work, ns))
                daemons.append((engine, ns, stack.enter_context(pair(engine))))
            for _ in range(args.reps):
                for engine, ns, (spid, address, cpid) in daemons:
                    cases = {
                        "container → container": (["nsenter", f"--net=/proc/{cpid}/ns/net"],
                                                  address, PORT),
                        "host → published port": (["ip", "netns", "exec", ns], "127.0.0.1",
                                                  PUBLISHED),
                    }
                    for case, (client, to, port) in cases.items():
                        rates.setdefault((case, engine.name), []).append(
                            iperf(spid, client, to, port, args.seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["| case | contender | median Gbit/s | runs | sampan / dockerd |",
             "|---|---|---|---|---|"]
    results = []
    for (case, name), samples in rates.items():
        median = statistics.median(samples)
        ours = statistics.median(rates[(case, "sampand")])
        ratio = f"{ours / median:.2f}×" if name != "sampand" else ""  # noqa: RUF001
        lines.append(f"| {case} | {name} | {median:.2f} | {len(samples)} | {ratio} |")
        results.append({"case": case, "contender": name, "gbit_per_s": samples})
    with open(os.path.join(HERE, "results-network.json"), "w") as f:
        json.dump({"cpus": os.cpu_count(), "seconds": args.seconds, "results": results}, f,
                  indent=2)
    with open(os.path.join(HERE, "results-network.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
