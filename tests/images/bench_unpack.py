"""Unpack speed of the `debian` fixture's layer: sampan's apply_layer beside GNU tar.

    .venv/bin/python tests/images/bench_unpack.py [runs]

Both write the same 6,670 entries (116 MiB) to the same filesystem; sampan also hashes the
stream (the diff ID check GNU tar does not do). Prints the median wall time of each.
"""

from __future__ import annotations

import gzip
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from sampan.archive.unpack import apply_layer

FIXTURE = Path(__file__).resolve().parents[3] / "shared/fixtures/images/debian.docker.tar.gz"


def _sampan(layer: Path, target: str) -> None:
    with open(layer, "rb") as f:
        apply_layer(f, target)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = Path(tempfile.mkdtemp(prefix="sampan-bench-"))
    try:
        with tarfile.open(FIXTURE) as archive:
            member = next(m for m in archive if m.name.endswith("layer.tar"))
            plain = work / "layer.tar"
            with archive.extractfile(member) as src, open(plain, "wb") as dst:  # type: ignore[union-attr]
                shutil.copyfileobj(src, dst, 1 << 20)
        packed = work / "layer.tar.gz"
        with open(plain, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        cases = {
            "GNU tar -xf  (plain)": lambda t: subprocess.run(
                ["tar", "-xf", str(plain), "-C", t, "--xattrs", "--numeric-owner"], check=True),
            "sampan       (plain)": lambda t: _sampan(plain, t),
            "GNU tar -xzf (gzip) ": lambda t: subprocess.run(
                ["tar", "-xzf", str(packed), "-C", t, "--xattrs", "--numeric-owner"],
                check=True),
            "sampan       (gzip) ": lambda t: _sampan(packed, t),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(runs):
            for name, run in cases.items():
                target = work / "target"
                target.mkdir()
                subprocess.run(["sync"], check=True)
                start = time.perf_counter()
                run(str(target))
                times[name].append(time.perf_counter() - start)
                shutil.rmtree(target)
        size = plain.stat().st_size / (1 << 20)
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name}: {median:.3f} s  ({size / median:.0f} MiB/s of tar)")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
