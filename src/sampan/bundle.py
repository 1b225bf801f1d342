"""The runtime's modules in one file, so that a command's imports skip the file system.

Every `sampan-runtime` command is a fresh interpreter that imports some 35 modules, most of
them sampan's. Through the normal machinery each costs about 120 µs here before its body
runs (the path finders, a directory's listing checked, the source's stat, the .pyc opened,
read and checked: Python code and system calls each time); from a table already in memory,
about 25 µs. ``python -m sampan.bundle`` (scripts/install.sh runs it, after compileall)
writes the compiled Python modules the runtime's commands import (the standard library's
that are not frozen into the interpreter too) into one file in sampan's ``__pycache__``;
the runtime's script calls ``install()`` first, which reads the file's index and puts a
finder in front of the normal ones; each module's code is read when it is imported.

A module whose source changed since the file was written (its size or mtime differ) is
left to the normal import, so an edited source tree never runs stale code; so is every
module the file does not hold, and the whole file is ignored for another interpreter
version (the bytecode's magic number).
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.abc import Loader as _Loader
    from importlib.machinery import ModuleSpec
    from importlib.util import MAGIC_NUMBER
    from types import ModuleType
else:  # the import system's own, loaded already (importlib.util is a dozen modules more)
    from _frozen_importlib import ModuleSpec
    from _frozen_importlib_external import MAGIC_NUMBER

    _Loader = object

# What the runtime's commands import (with all they import in turn): the file holds these.
ENTRIES = ("sampan.runtime.sealed", "sampan.cli.runtime", "sampan.runtime.container",
           "sampan.runtime.init", "sampan.runtime.foreground", "sampan.runtime.features",
           "sampan.cgroups.v1", "sampan.cgroups.v2", "sampan.cgroups.devices",
           "sampan.cgroups.bpf", "sampan.kernel.seccomp_bpf")
PACKAGE = os.path.dirname(os.path.abspath(__file__))
FILE = os.path.join(PACKAGE, "__pycache__",
                    f"runtime-bundle.{sys.implementation.cache_tag}.marshal")

# name -> (source file, is a package, its mtime_ns and size, offset and length of its code
# after the index)
Entry = tuple[str, bool, int, int, int, int]
# The file: MAGIC_NUMBER, the index's length (4 bytes, little-endian), the index (marshal of
# {name: Entry}), then each module's marshalled code, read when the module is imported:
# read whole, the 400 KB would cost a millisecond more (a read into fresh pages, then a
# copy of each code's bytes).
_HEAD = len(MAGIC_NUMBER) + 4


class BundleFinder(_Loader):
    """A meta path finder and loader over one bundle file (an open descriptor of it)."""

    def __init__(self, fd: int, base: int, entries: dict[str, Entry]) -> None:
        self.fd = fd
        self.base = base  # where the codes start
        self.entries = entries

    def find_spec(self, name: str, path: object = None, target: object = None,
                  ) -> ModuleSpec | None:
        entry = self.entries.get(name)
        if entry is None:
            return None
        source, is_package, mtime_ns, size, _, _ = entry
        try:
            st = os.stat(source)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None  # edited since: the normal import compiles what is there now
        spec = ModuleSpec(name, self, origin=source, is_package=is_package)
        spec.has_location = True
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(source)]
        return spec

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        *_, offset, length = self.entries[module.__name__]
        exec(marshal.loads(os.pread(self.fd, length, self.base + offset)), module.__dict__)


def read_index(fd: int) -> tuple[int, dict[str, Entry]] | None:
    """Where the codes start and the file's index; None for a file that is not a bundle
    for this interpreter."""
    head = os.pread(fd, 65536, 0)
    if head[:len(MAGIC_NUMBER)] != MAGIC_NUMBER or len(head) < _HEAD:
        return None
    length = int.from_bytes(head[len(MAGIC_NUMBER):_HEAD], "little")
    if _HEAD + length > len(head):
        head = os.pread(fd, _HEAD + length, 0)
    try:
        entries: dict[str, Entry] = marshal.loads(memoryview(head)[_HEAD:_HEAD + length])
    except (EOFError, ValueError, TypeError):
        return None
    return _HEAD + length, entries


def install(path: str = FILE) -> BundleFinder | None:
    """Put the bundle's finder first in sys.meta_path, if the file is there and fits."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    index = read_index(fd)
    if index is None:
        os.close(fd)
        return None
    finder = BundleFinder(fd, *index)
    sys.meta_path.insert(0, finder)
    return finder


def modules(entries: tuple[str, ...] = ENTRIES) -> dict[str, str]:
    """Module name -> source file of what importing ``entries`` loads from Python sources,
    in a fresh interpreter as the runtime's script runs (-I -S)."""
    import subprocess

    probe = (f"import sys\nsys.path.insert(0, {os.path.dirname(PACKAGE)!r})\n"
             "before = set(sys.modules)\n"
             f"for name in {entries!r}:\n    __import__(name)\n"
             "for name, m in sorted(sys.modules.items()):\n"
             "    path = getattr(m.__spec__, 'origin', None) or ''  # 'frozen' for some\n"
             "    if path.endswith('.py') and (name not in before or name == 'sampan'):\n"
             "        print(name, path)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True,
                         text=True, check=True)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


def build(path: str = FILE, sources: dict[str, str] | None = None) -> int:
    """Write the bundle of ``sources`` (default: what ENTRIES loads) atomically; the count."""
    entries: dict[str, Entry] = {}
    codes: list[bytes] = []
    offset = 0
    for name, source in (sources if sources is not None else modules()).items():
        with open(source, "rb") as f:
            st = os.fstat(f.fileno())  # before the read: an edit during it shows later
            text = f.read()
        codes.append(marshal.dumps(compile(text, source, "exec", dont_inherit=True)))
        entries[name] = (source, os.path.basename(source) == "__init__.py", st.st_mtime_ns,
                         st.st_size, offset, len(codes[-1]))
        offset += len(codes[-1])
    table = marshal.dumps(entries)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        out.write(MAGIC_NUMBER + len(table).to_bytes(4, "little") + table + b"".join(codes))
    os.replace(tmp, path)
    return len(entries)


if __name__ == "__main__":
    print(f"{build()} modules in {FILE}")
