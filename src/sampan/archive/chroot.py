"""Tar out of and into a container's filesystem from a process chrooted into it.

`docker cp` reads and writes a tree the container may be changing at the same moment: a
directory swapped for a symlink to ``/`` between a check and a use would lead a daemon that
walks host paths onto the host's files. Chrooted into the container's root (its mounted
snapshot, or ``/proc/<pid>/root`` for a running one, which shows the volumes and tmpfs
mounted in its own mount namespace), every symlink and ``..`` resolves inside it whatever
the container does, as moby's chrootarchive does. The daemon runs this module as a fresh
interpreter (``python -m sampan.archive.chroot``), so it never forks itself; everything the
work needs is imported before the chroot, since the container has no Python.

    get ROOT PATH NAME [--skip DIR]...
                              the tar of PATH (a directory recursively), its top entry
                              renamed NAME, to stdout; below a DIR (a kernel filesystem
                              such as /proc) nothing is read, the directory is kept empty
    put ROOT DIR [--owner UID:GID] [--no-overwrite-dir-non-dir]
                              the tar on stdin (plain or compressed) unpacked into DIR
Exit status 0 on success; otherwise the error is the last line of stderr.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from contextlib import suppress

from . import ArchiveError
from .unpack import CopyOptions, apply_layer
from .writer import ENTRY, LayerEntry, write_layer


def _preload() -> None:
    """Modules imported lazily further down, which the chroot would not find."""
    for name in ("encodings.idna", "bz2", "lzma", "zstandard"):
        with suppress(ImportError):
            __import__(name)


def resource_entries(path: str, name: str, skip: frozenset[str] = frozenset(),
                     ) -> Iterator[LayerEntry]:
    """``path`` as the entry ``name``, then (a directory) everything below it but what is
    below the directories ``skip``."""
    yield LayerEntry(name, ENTRY, path)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        return
    prefix = name.rstrip("/") + "/"  # "/" (the root) as docker names it: "/", "/bin"

    def walk(directory: str, rel: str) -> Iterator[LayerEntry]:
        with os.scandir(directory) as scan:
            entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in scan)
        for child, is_dir in entries:
            source = os.path.join(directory, child)
            yield LayerEntry(prefix + rel + child, ENTRY, source)
            if is_dir and os.path.normpath(source) not in skip:
                yield from walk(source, rel + child + "/")

    yield from walk(path, "")


def _get(path: str, args: list[str]) -> None:
    name = args.pop(0) if args and not args[0].startswith("--") else os.path.basename(path)
    skip = set()
    while args:
        arg = args.pop(0)
        if arg != "--skip" or not args:
            raise SystemExit(f"unknown option {arg!r}")
        skip.add(os.path.normpath(args.pop(0)))
    out = sys.stdout.buffer
    write_layer(resource_entries(path, name, frozenset(skip)), out)
    out.flush()


def _put(directory: str, args: list[str]) -> None:
    owner = None
    no_overwrite = False
    while args:
        arg = args.pop(0)
        if arg == "--owner":
            uid, _, gid = args.pop(0).partition(":")
            owner = (int(uid), int(gid))
        elif arg == "--no-overwrite-dir-non-dir":
            no_overwrite = True
        else:
            raise SystemExit(f"unknown option {arg!r}")
    if not stat.S_ISDIR(os.stat(directory).st_mode):
        raise ArchiveError("extraction point is not a directory")
    apply_layer(sys.stdin.buffer, directory,
                options=CopyOptions(owner=owner, no_overwrite_dir_non_dir=no_overwrite))


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("get", "put"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, root, path = argv[0], argv[1], argv[2]
    _preload()
    os.chroot(root)
    os.chdir("/")
    try:
        if mode == "get":
            _get(path, argv[3:])
        else:
            _put(path, argv[3:])
    except (ArchiveError, OSError) as exc:
        text = str(exc) if isinstance(exc, ArchiveError) else \
            f"{exc.filename or path}: {exc.strerror or exc}"
        print(text, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
