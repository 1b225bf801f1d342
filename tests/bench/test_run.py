"""bench/run.py's interleave: the order in which contenders run, which the ratios rest on."""

from __future__ import annotations

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bench_run():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_run",
                                                  os.path.join(ROOT, "bench", "run.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclass looks its module up there)
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path  # (it puts the project's root first, for bench scripts)
    return module


def test_contenders_run_forwards_then_backwards() -> None:
    """Each contender follows each other one, and itself, equally often (a fixed order
    gave runc our run's leftovers every time)."""
    calls: list[str] = []
    contenders = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    results = _bench_run().interleave("case", contenders, reps=4, warmup=1)
    assert calls == list("abc" + "abc" + "cba" + "abc" + "cba")
    assert [(r.case, r.contender, r.samples) for r in results] == [
        ("case", "a", 4), ("case", "b", 4), ("case", "c", 4)]
