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
