"""sampan-runtime as installed: a C launcher (scripts/sampan-runtime.c) in front of the
runtime's script. For the commands that enter a container it starts the interpreter once,
from a read-only view of it (CVE-2019-5736); the script run alone, as a pip-only install
has it, protects itself the same way with a second start (runtime/sealed.py)."""

from __future__ import annotations

import json
import marshal
import os
import py_compile
import re
import subprocess
import sys
import time

import pytest

from sampan.runtime import sealed

from .helpers import SAMPAN_RUNTIME, VENV_BIN, Bundle, Runtime

SCRIPT = os.path.join(os.path.dirname(VENV_BIN), "libexec", "sampan-runtime")
SOURCE = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "sampan-runtime.c")


def _c_strings(source: str, array: str) -> tuple[str, ...]:
    body = re.search(array + r"\[\] = \{(.*?)\};", source, re.S)
    assert body is not None, array
    return tuple(re.findall(r'"([^"]*)"', body.group(1)))


def test_the_set_up_installs_the_launcher_before_the_script() -> None:
    with open(SAMPAN_RUNTIME, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    with open(SCRIPT) as f:
        source = f.read()
    assert source.startswith(f"#!{VENV_BIN}/python -IS\n")
    with open(SCRIPT + ".pyc", "rb") as f:  # the script as it is now, compiled
        code = marshal.loads(f.read()[16:])
    assert code == compile(source, SCRIPT, "exec", dont_inherit=True) and code.co_filename == SCRIPT


def test_the_launcher_runs_the_compiled_script_where_there_is_one(tmp_path: object) -> None:
    """No start compiles the script (the first compile in an interpreter costs as much as
    a good part of its imports): the launcher runs SCRIPT.pyc, or SCRIPT without one."""
    script, other, launcher = (os.path.join(str(tmp_path), name)
                               for name in ("script", "other.py", "launcher"))
    with open(script, "w") as f:
        f.write("import sys\nprint('source', sys.argv[1:])\n")
    subprocess.run(["cc", "-O2", "-o", launcher, SOURCE, f'-DPYTHON="{VENV_BIN}/python"',
                    f'-DSCRIPT="{script}"'], check=True)
    run = [launcher, "state", "c1"]  # (not a command that enters a container)
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout == \
        "source ['state', 'c1']\n"
    with open(other, "w") as f:
        f.write("import sys\nprint('compiled', sys.argv[1:], __file__.endswith('.pyc'))\n")
    py_compile.compile(other, script + ".pyc", doraise=True)
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout == \
        "compiled ['state', 'c1'] True\n"


def test_the_launcher_scans_the_command_line_as_the_script_does() -> None:
    with open(SOURCE) as f:
        source = f.read()
    assert _c_strings(source, "VALUE_FLAGS") == sealed.VALUE_FLAGS
    assert _c_strings(source, "ENTERING") == sealed.ENTERING


@pytest.mark.parametrize("binary", [SAMPAN_RUNTIME, SCRIPT], ids=["launcher", "script"])
def test_a_created_container_waits_in_a_protected_interpreter(
        binary: str, bundle: Bundle, tmp_path: object) -> None:
    """The container's init, forked from the runtime and waiting for `start` inside the
    container's namespaces, runs the view of the interpreter, never the host's file."""
    runtime = Runtime(binary, os.path.join(str(tmp_path), "state"))
    bundle.set_args("true").write()
    runtime("create", "--bundle", bundle.path, bundle.id, check=True)
    try:
        exe = f"/proc/{runtime.state(bundle.id)['pid']}/exe"
        assert sealed.exe_is_protected(exe)
        host = os.stat(os.path.realpath(sys.executable))
        assert (os.stat(exe).st_dev, os.stat(exe).st_ino) != (host.st_dev, host.st_ino)
    finally:
        runtime("delete", "--force", bundle.id)


def _interpreter_starts(binary: str, bundle: Bundle, root: str, log: str) -> list[str]:
    """The exec calls of a `run` (strace), up to the container's program."""
    bundle.set_args("/bin/true").write()
    subprocess.run(["strace", "-f", "-qq", "-s", "256", "-e", "trace=execve,execveat", "-o", log,
                    binary, "--root", root, "run", "--bundle", bundle.path, bundle.id],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    with open(log) as f:
        calls = [line for line in f if "exec" in line and "resumed" not in line]
    return [c for c in calls if '"/bin/true"' not in c]


def test_the_launcher_starts_the_interpreter_once(bundle: Bundle, tmp_path: object) -> None:
    root, log = (os.path.join(str(tmp_path), name) for name in ("state", "strace.log"))
    launcher = _interpreter_starts(SAMPAN_RUNTIME, bundle, root, log)
    assert len(launcher) == 2, launcher
    assert f'execve("{SAMPAN_RUNTIME}"' in launcher[0]
    # the second: the interpreter through the view's fd (execveat), not by its path
    assert "execveat(" in launcher[1] and f'["{VENV_BIN}/python", "-IS", "{SCRIPT}.pyc"' \
        in launcher[1], launcher
    bundle.id += "s"
    script = _interpreter_starts(SCRIPT, bundle, root, log)
    assert len(script) == 2 and "execveat(" in script[1], script  # its own re-execution


def _own_procs_files() -> set[str]:
    """Where this process (and so the launcher it starts) sits, as cgroup.procs paths."""
    found = set()
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, rel = line.rstrip("\n").split(":", 2)
            name = controllers.removeprefix("name=")
            bases = [f"/sys/fs/cgroup/{name}"] if name else ["/sys/fs/cgroup/unified",
                                                            "/sys/fs/cgroup"]
            found.update(os.path.normpath(f"{b}{rel}/cgroup.procs") for b in bases)
    return found


def test_the_launcher_warms_the_cgroup_lock_while_python_starts(
        bundle: Bundle, tmp_path: object) -> None:
    """A helper moves itself into its own cgroup before the runtime places the init (so
    that the kernel's RCU grace period for the lock passes while Python starts), and is
    gone when the runtime is."""
    root, log = (os.path.join(str(tmp_path), name) for name in ("state", "strace.log"))
    bundle.set_args("/bin/true").write()
    subprocess.run(["strace", "-f", "-q", "-e", "trace=openat,write",
                    "-o", log, SAMPAN_RUNTIME, "--root", root, "run", "--bundle",
                    bundle.path, bundle.id],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    with open(log) as f:
        lines = f.read().splitlines()
    opened: dict[tuple[str, str], str] = {}  # (pid, fd) -> path
    moves = []  # (pid, path, what was written), in order
    for line in lines:
        if m := re.match(r'(\d+) +openat\(AT_FDCWD, "([^"]+/cgroup\.procs)".* = (\d+)$', line):
            opened[(m.group(1), m.group(3))] = m.group(2)
        elif (m := re.match(r'(\d+) +write\((\d+), "(\d+)"', line)) and \
                (m.group(1), m.group(2)) in opened:
            moves.append((m.group(1), os.path.normpath(opened[(m.group(1), m.group(2))]),
                          m.group(3)))
    assert moves, lines
    helper, path, written = moves[0]
    assert written == "0" and path in _own_procs_files(), moves
    init_moves = [mv for mv in moves if mv[2] != "0"]
    assert init_moves and all(mv[0] != helper for mv in init_moves), moves
    assert any(re.match(rf"{helper} +\+\+\+ ", line) for line in lines), "helper never ended"


def test_the_warm_up_helper_is_no_child_of_the_runtime(bundle: Bundle, tmp_path: object) -> None:
    """Under a `run` in the foreground, the container's init is the runtime's one child:
    the helper, done long before, is not left behind as a zombie there."""
    runtime = Runtime(SAMPAN_RUNTIME, os.path.join(str(tmp_path), "state"))
    bundle.set_args("sleep", "3").write()
    proc = subprocess.Popen([SAMPAN_RUNTIME, "--root", runtime.root, "run", "--bundle",
                             bundle.path, bundle.id], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = runtime("state", bundle.id)
            if state.returncode == 0 and json.loads(state.stdout)["status"] == "running":
                break
            time.sleep(0.05)
        time.sleep(0.5)  # the helper's 150 ms are over
        init = runtime.state(bundle.id)["pid"]
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            assert f.read().split() == [str(init)]
    finally:
        runtime("kill", bundle.id, "KILL")
        proc.wait(timeout=10)
