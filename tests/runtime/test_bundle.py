"""The runtime's modules from one file (src/sampan/bundle.py): served from it while their
sources are as they were, imported normally once edited, and used by the installed runtime."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from sampan import bundle as runtime_bundle

from .helpers import SAMPAN_RUNTIME, Bundle, Runtime

PROBE = """
import sys
sys.path.insert(0, sys.argv[2])
from sampan import bundle
finder = bundle.install(sys.argv[1])
import pkgx.a
print(finder is not None, pkgx.a.VALUE,
      type(pkgx.__spec__.loader).__name__, type(pkgx.a.__spec__.loader).__name__)
"""


def _probe(path: str, tree: str) -> list[str]:
    src = os.path.dirname(runtime_bundle.PACKAGE)
    result = subprocess.run([sys.executable, "-I", "-S", "-c",
                             f"import sys; sys.path.insert(0, {src!r})\n" + PROBE, path, tree],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_served_from_the_file_until_a_source_changes(tmp_path: object) -> None:
    tree = os.path.join(str(tmp_path), "tree")
    os.makedirs(os.path.join(tree, "pkgx"))
    init, module = (os.path.join(tree, "pkgx", name) for name in ("__init__.py", "a.py"))
    for name, text in ((init, ""), (module, "VALUE = 1\n")):
        with open(name, "w") as f:
            f.write(text)
    path = os.path.join(str(tmp_path), "bundle.marshal")
    assert runtime_bundle.build(path, {"pkgx": init, "pkgx.a": module}) == 2
    assert _probe(path, tree) == ["True", "1", "BundleFinder", "BundleFinder"]

    with open(module, "w") as f:  # edited after the bundle was made
        f.write("VALUE = 22\n")
    assert _probe(path, tree) == ["True", "22", "BundleFinder", "SourceFileLoader"]

    with open(path, "r+b") as f:  # another interpreter's bytecode: the file is ignored
        f.write(b"\0\0")
    assert _probe(path, tree) == ["False", "22", "SourceFileLoader", "SourceFileLoader"]


def test_the_installed_runtime_imports_from_its_bundle(bundle: Bundle, sampan: Runtime,
                                                       tmp_path: object) -> None:
    """install.sh made the file, it holds every module the runtime's commands import, and a
    `run` opens none of sampan's .py or .pyc files but the two that read the bundle."""
    fd = os.open(runtime_bundle.FILE, os.O_RDONLY)
    try:
        index = runtime_bundle.read_index(fd)
    finally:
        os.close(fd)
    assert index is not None
    assert set(runtime_bundle.modules()) <= set(index[1])
    log = os.path.join(str(tmp_path), "strace.log")
    bundle.set_args("true").write()
    result = subprocess.run(["strace", "-f", "-qq", "-o", log, "-e", "trace=openat",
                             SAMPAN_RUNTIME, "--root", sampan.root, "run", "--bundle",
                             bundle.path, bundle.id], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with open(log) as f:
        paths = re.findall(r'openat\([^,]+, "([^"]+)"', f.read())
    package = runtime_bundle.PACKAGE
    read = {os.path.relpath(p, package) for p in paths
            if p.startswith(package + "/") and p.endswith((".py", ".pyc"))}
    assert runtime_bundle.FILE in paths
    tag = sys.implementation.cache_tag
    assert read <= {"__init__.py", "bundle.py", f"__pycache__/__init__.{tag}.pyc",
                    f"__pycache__/bundle.{tag}.pyc"}, \
        f"{read}: sources edited since the bundle was written? (python -m sampan.bundle)"
