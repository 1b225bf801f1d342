"""tests/vm runs only inside the cgroup v2 test VM (scripts/test-vm.sh).

Anywhere else its tests (marked ``vm``) are deselected, not skipped: a skip would read as a
pass of something that never ran.
"""

from __future__ import annotations

import os

import pytest

IN_VM = os.environ.get("SAMPAN_VM") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_VM:
        return
    keep = [item for item in items if item.get_closest_marker("vm") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
