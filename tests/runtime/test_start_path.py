"""What a container start loads: the modules the runtime keeps off its start path.

Each `sampan-runtime` command is a fresh interpreter, so every import is paid per container
(see oci/record.py, oci/jsonio.py, kernel/unixsock.py, kernel/signals.py, cli/options.py).
This checks the set of modules, not a time.
"""

from __future__ import annotations

import subprocess
import sys

# ctypes: the kernel calls go through the C extension install.sh builds (kernel/_syscall.c);
# resource, termios and tty: shared libraries (limits are set with prlimit; the terminal's
# modules are loaded for containers with one)
HEAVY = ("argparse", "collections", "contextlib", "dataclasses", "enum", "inspect", "json",
         "re", "socket", "subprocess", "typing", "shutil", "datetime", "signal", "ctypes",
         "resource", "termios", "tty", "types",
         # loaded by the runtime after the init is forked (tests/runtime/test_cgroup_late.py)
         "sampan.cgroups")

# what only the container's init runs (runtime/context.py): loaded in the init, after the fork
CHILD_ONLY = ("sampan.runtime.init", "sampan.runtime.rootfs", "sampan.runtime.hooks")

PROBE = f"""
import sys
from sampan.cli import runtime
from sampan.runtime import container, foreground
args = runtime.parse(runtime._PROG, runtime._DESCRIPTION, runtime._GLOBAL, runtime._COMMANDS,
                     ["--root", "/tmp/x", "run", "--bundle", "/tmp/b", "--pid-file", "p", "c1"])
assert args.command == "run" and args.pid_file == "p" and args.id == "c1", args
print(" ".join(sorted(m for m in {HEAVY + CHILD_ONLY!r} if m in sys.modules)))
from sampan.runtime import init
print(" ".join(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


def test_start_path_leaves_heavy_modules_unloaded() -> None:
    """Neither the runtime before the fork nor the init after it loads a heavy module,
    and the runtime leaves the init's own modules to the init."""
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == ["", "", ""], result.stdout


def test_first_start_finds_the_command_before_loading_the_parser() -> None:
    """The launcher re-executes create/run/exec from a protected interpreter before it
    imports the command-line parser (runtime/sealed.py): its scan of the command line must
    read runc's global flags as the parser does."""
    from sampan.cli import runtime
    from sampan.runtime import sealed

    valued = {f.names[0] for f in runtime._GLOBAL if f.kind != "bool"}
    assert set(sealed.VALUE_FLAGS) == valued
    assert set(sealed.ENTERING) <= set(runtime._COMMANDS)
    for argv, wanted in ((["--root", "/r", "create", "-b", "x", "id"], True),
                         (["--log", "run", "--log-format", "json", "state", "run"], False),
                         (["--debug", "--systemd-cgroup", "exec", "id", "sh"], True),
                         (["--root=/run", "run", "id"], True),
                         (["--root", "exec", "kill", "id"], False),
                         (["--version"], False), ([], False)):
        assert sealed.entering(argv) is wanted, argv
        if argv and argv[-1] != "--version":
            parsed = runtime.parse(runtime._PROG, runtime._DESCRIPTION, runtime._GLOBAL,
                                   runtime._COMMANDS, argv)
            assert (parsed.command in sealed.ENTERING) is wanted, argv
    probe = ("import sys; from sampan.runtime import sealed; "
             "sealed.entering(['--root', '/r', 'state', 'x']); "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('sampan'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["sampan", "sampan.runtime", "sampan.runtime.sealed"], out


STATE_PROBE = """
import sys
from sampan.cli import runtime
code = runtime.main(["--root", sys.argv[1], "state", "c1"])
heavy = {heavy!r} + ("sampan.cgroups", "sampan.runtime.container", "ctypes")
print(code, " ".join(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def test_state_loads_only_the_record(tmp_path: object) -> None:
    """podman and conmon run `state` again and again: it reads the record and nothing of
    the machinery that makes containers (a stopped one here: its pid is long gone)."""
    import json
    import os

    root = os.path.join(str(tmp_path), "root")
    os.makedirs(os.path.join(root, "c1"))
    record = {"id": "c1", "bundle": "/b", "rootfs": "/b/rootfs", "pid": 2**22 + 1,
              "pid_start": 5, "created": "2026-01-01T00:00:00Z", "owner": "",
              "annotations": {"k": "v"}}
    with open(os.path.join(root, "c1", "state.json"), "w") as f:
        json.dump(record, f)
    result = subprocess.run([sys.executable, "-c", STATE_PROBE.format(heavy=HEAVY), root],
                            capture_output=True, text=True)
    assert result.stderr.split() == ["0"], result.stderr
    assert json.loads(result.stdout) == {
        "ociVersion": "1.2.0", "id": "c1", "pid": 0, "status": "stopped", "bundle": "/b",
        "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z", "owner": "",
        "annotations": {"k": "v"}}
    assert result.stdout == json.dumps(json.loads(result.stdout), indent=2) + "\n"
