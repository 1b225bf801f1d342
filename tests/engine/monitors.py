"""What every container monitor (sampan's own, conmon) must do for ``docker run``: the
checks test_warm_monitor.py and test_conmon_monitor.py share."""

from __future__ import annotations

from .conftest import DockerCLI


def check_run_stdio(d: DockerCLI) -> None:
    """stdout and stderr apart, the exit code, stdin, a TTY, a missing program's 127."""
    result = d.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout) == (3, "out\n")
    assert "err\n" in result.stderr
    assert d.ok("run", "--rm", "-i", "busybox", "cat", input="through stdin\n") == \
        "through stdin\n"
    assert d.ok("run", "--rm", "-t", "busybox", "tty").strip() == "/dev/pts/0"
    missing = d.docker("run", "--rm", "busybox", "no-such-program")
    assert missing.returncode == 127
    assert 'exec: "no-such-program": executable file not found' in missing.stderr
