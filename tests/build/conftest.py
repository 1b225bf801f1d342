"""The build tests drive the engine tests' sampand (same fixture: its own socket, data root
and cgroup parent, busybox loaded)."""

from tests.engine.conftest import Daemon, daemon, docker_client  # noqa: F401
