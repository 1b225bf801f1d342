"""What a container start loads: the modules the runtime keeps off its start path.

Each `sampan-runtime` command is a fresh interpreter, so every import is paid per container
(see oci/record.py, oci/jsonio.py, kernel/unixsock.py, kernel/signals.py, cli/options.py).
This checks the set of modules, not a time.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("argparse", "collections", "contextlib", "dataclasses", "enum", "inspect", "json",
         "re", "socket", "subprocess", "typing", "shutil", "datetime", "signal")

PROBE = f"""
import sys
from sampan.cli import runtime
from sampan.runtime import container, foreground, init
args = runtime.parse(runtime._PROG, runtime._DESCRIPTION, runtime._GLOBAL, runtime._COMMANDS,
                     ["--root", "/tmp/x", "run", "--bundle", "/tmp/b", "--pid-file", "p", "c1"])
assert args.command == "run" and args.pid_file == "p" and args.id == "c1", args
print(" ".join(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


def test_start_path_leaves_heavy_modules_unloaded() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


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
