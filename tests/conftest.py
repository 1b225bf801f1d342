"""Shared test set-up.

The suite drives the real kernel (namespaces, mounts, cgroups), so it needs root. In CI a
missing privilege is a failure, never a silent skip. Test sessions that touch kernel state
are serialised through one lock file, so that two developers' runs on one machine do not
trip over each other's mounts or cgroups.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest

LOCK_PATH = "/run/lock/sampan-tests.lock"


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.geteuid() != 0 and os.environ.get("SAMPAN_VM") != "1":
        raise pytest.UsageError("sampan's tests drive the kernel and must run as root")


@pytest.fixture(scope="session", autouse=True)
def _kernel_lock() -> Iterator[None]:
    if os.environ.get("SAMPAN_NO_TEST_LOCK") == "1":
        yield
        return
    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
