"""The image layer's benchmarks beside the peers, as ratios taken in one run (issue check 4).

    .venv/bin/python bench/images.py [--reps N] [--case pull] [--case unpack]

- pull: the `debian` fixture (one ~49 MiB gzip layer, 116 MiB unpacked) from a local
  distribution registry on 127.0.0.1: sampan's ``pull`` (download, verify, unpack) beside
  `docker pull` of a dockerd 20.10 started here on its own directories, and `skopeo copy`
  to a directory (download and verify only: skopeo does not unpack);
- unpack: that layer, gzip'd and plain, into an empty directory: sampan's ``apply_layer``
  beside GNU tar (owners, modes, xattrs kept, as sampan keeps them).

Contenders run A/B interleaved (bench/run.py's ``interleave``); what must happen between two
runs (deleting the pulled image, emptying the target) is a contender of its own whose
timings are dropped. Results go to bench/results-images.md and bench/results-images.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from run import ROOT, Result, interleave, write_report
from tests.images.dockerd import private_dockerd

from sampan.archive.unpack import apply_layer
from sampan.images import ImageStore
from sampan.registry import pull

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
FIXTURES = os.path.join(SHARED, "fixtures", "images")
REGISTRY_SCRIPTS = os.path.join(SHARED, "registry")
_RESET = "_reset "  # contenders named so are the work between two runs: not reported


@dataclass
class Throughput:
    case: str
    contender: str
    megabytes: float  # what one run moves: MiB downloaded, or MiB of tar unpacked
    mb_per_s: float


def _sh(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          env=env).stdout


def _command(*args: str) -> Callable[[], None]:
    def go() -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return go


def _debian() -> dict[str, object]:
    with open(os.path.join(FIXTURES, "INDEX.json")) as f:
        return next(i for i in json.load(f)["images"] if i["name"] == "debian")


@contextmanager
def local_registry(work: str) -> Iterator[str]:
    """A distribution registry on a free loopback port, seeded with debian; its host:port."""
    env = {**os.environ, "SAMPAN_REGISTRY_RUN": os.path.join(work, "registry-run")}
    port = 5600 + os.getpid() % 300
    out = _sh(os.path.join(REGISTRY_SCRIPTS, "start-registry.sh"), "--port", str(port),
              os.path.join(work, "registry"), env=env)
    host = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)["REGISTRY"]
    try:
        _sh(os.path.join(REGISTRY_SCRIPTS, "seed-registry.sh"), host, "--only", "debian",
            env=env)
        yield host
    finally:
        subprocess.run([os.path.join(REGISTRY_SCRIPTS, "stop-registry.sh"), "--port",
                        str(port), "--purge"], env=env, capture_output=True, check=False)


def case_pull(reps: int, work: str) -> tuple[list[Result], list[Throughput]]:
    debian = _debian()
    layers = debian["layers"]
    assert isinstance(layers, list)
    downloaded = sum(la["compressed_size"] for la in layers) / (1 << 20)
    with local_registry(work) as registry, \
            private_dockerd(work, "--insecure-registry", registry) as docker:
        ref = f"{registry}/debian:bookworm"
        stores = os.path.join(work, "stores")
        os.makedirs(stores)
        counter = iter(range(10**6))
        state: dict[str, str] = {}

        def fresh_store() -> None:
            if "store" in state:
                shutil.rmtree(state["store"])
            state["store"] = os.path.join(stores, str(next(counter)))

        def sampan_pull() -> None:
            store = ImageStore(state["store"])
            try:
                pull(store, ref)
            finally:
                store.close()

        copied = os.path.join(work, "skopeo")
        contenders = {
            "sampan pull": sampan_pull,
            _RESET + "sampan": fresh_store,
            "docker pull": _command(*docker, "pull", "-q", ref),
            _RESET + "docker": _command(*docker, "rmi", ref),
            "skopeo copy (no unpack)": _command("skopeo", "copy", "-q",
                                                "--src-tls-verify=false", f"docker://{ref}",
                                                f"dir:{copied}"),
            _RESET + "skopeo": lambda: shutil.rmtree(copied),
        }
        fresh_store()
        results = interleave("pull debian from a local registry", contenders, reps, warmup=1)
    return _report_rows(results, downloaded)


def _report_rows(results: list[Result], megabytes: float) -> tuple[list[Result],
                                                                   list[Throughput]]:
    kept = [r for r in results if not r.contender.startswith(_RESET)]
    return kept, [Throughput(r.case, r.contender, round(megabytes, 1),
                             round(megabytes / (r.median_ms / 1000), 1)) for r in kept]


def case_unpack(reps: int, work: str) -> tuple[list[Result], list[Throughput]]:
    plain = os.path.join(work, "layer.tar")
    with tarfile.open(os.path.join(FIXTURES, "debian.docker.tar.gz")) as archive:
        member = next(m for m in archive if m.name.endswith("layer.tar"))
        source = archive.extractfile(member)
        assert source is not None
        with open(plain, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    packed = plain + ".gz"
    with open(plain, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    megabytes = os.path.getsize(plain) / (1 << 20)
    target = os.path.join(work, "target")
    os.mkdir(target)

    def empty() -> None:
        shutil.rmtree(target)
        os.mkdir(target)

    def sampan(blob: str) -> Callable[[], None]:
        def go() -> None:
            with open(blob, "rb") as f:
                apply_layer(f, target)
        return go

    def gnu_tar(blob: str, *flags: str) -> Callable[[], None]:
        return _command("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xp",
                        *flags, "-f", blob, "-C", target)

    results: list[Result] = []
    throughput: list[Throughput] = []
    for label, blob, flags in (("gzip", packed, ("-z",)), ("plain", plain, ())):
        contenders = {"sampan apply_layer": sampan(blob), _RESET + "sampan": empty,
                      "GNU tar": gnu_tar(blob, *flags), _RESET + "tar": empty}
        rows, rates = _report_rows(
            interleave(f"unpack the debian layer ({label})", contenders, reps, warmup=1),
            megabytes)
        results += rows
        throughput += rates
    return results, throughput


CASES = {"pull": case_pull, "unpack": case_unpack}


def report(results: list[Result], throughput: list[Throughput]) -> None:
    """bench/run.py's table with a table of throughputs below it."""
    lines = ["", "| case | contender | MiB per run | MiB/s |", "|---|---|---|---|"]
    lines += [f"| {t.case} | {t.contender} | {t.megabytes} | {t.mb_per_s} |"
              for t in throughput]
    write_report(results, "results-images", "\n".join(lines) + "\n",
                 {"throughput": [vars(t) for t in throughput]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the image benchmarks unpack as root and start dockerd: run as root",
              file=sys.stderr)
        return 1
    results: list[Result] = []
    throughput: list[Throughput] = []
    work = tempfile.mkdtemp(prefix="sampan-bench-images-")
    try:
        for name in args.case or sorted(CASES):
            rows, rates = CASES[name](args.reps, work)
            results += rows
            throughput += rates
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, throughput)
    return 0


if __name__ == "__main__":
    sys.exit(main())
