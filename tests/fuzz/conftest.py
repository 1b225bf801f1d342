"""Hypothesis profiles for the fuzz targets (issue 9).

``HYPOTHESIS_PROFILE`` picks one; the default ``ci`` is short and derandomized (the same
examples on every run, so CI fails only on a change in the code); ``medium`` (10x) and ``long``
(about 130x) are for fuzzing sessions by hand (random seeds, a failure printed with its
``@reproduce_failure`` blob):

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/fuzz -q

A failure prints the smallest input it found and a ``@reproduce_failure`` line; the input
then becomes an ``@example`` (or a plain test) beside the property it broke.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("ci", max_examples=150, derandomize=True, deadline=None,
                          database=None, print_blob=True, suppress_health_check=_SLOW_OK)
settings.register_profile("medium", max_examples=1500, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.register_profile("long", max_examples=20_000, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target,
                                  Phase.shrink])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def scaled(n: int) -> int:
    """``n`` examples under ``ci`` for a slow target, scaled up as the profile grows."""
    return max(1, n * settings.default.max_examples // 150)
