"""The content store: every blob re-hashed against its name, blobs no image nor the build
cache names, and what interrupted writes left (temp files, partial downloads, build
spools)."""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import suppress
from functools import partial

from ..content import ContentError
from .report import ERROR, ORPHAN, Report
from .scope import Scope
from .used import Used

HASHED = {"digest-mismatch"}  # found only by re-hashing (not on a repair's second look)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        with suppress(FileNotFoundError):
            os.unlink(path)


def _locked(ingest_dir: str) -> bool:
    """Whether a writer holds the ingest's lock right now."""
    try:
        fd = os.open(os.path.join(ingest_dir, "lock"), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def check(scope: Scope, used: Used, report: Report) -> None:
    content = scope.images.content
    for digest, size in content.walk():
        report.count("blobs")
        path = content.path(digest)
        if scope.verify_blobs:
            try:
                content.verify(digest)
            except (ContentError, OSError) as exc:
                # A corrupt blob is worse than a missing one: a pull fetches a missing
                # blob again, but trusts one that is there. Removing it is the repair
                # only when nothing names it; otherwise it is reported.
                report.add("content", "digest-mismatch", ERROR, digest, str(exc),
                           None if digest in used.blobs else partial(_remove, path))
                continue
        if digest not in used.blobs and scope.old_path(path):
            report.add("content", "orphan-blob", ORPHAN, digest,
                       f"{size} bytes that no image or build-cache step names",
                       partial(content.delete, digest))
    tmp = os.path.join(content.root, "tmp")
    for name in sorted(os.listdir(tmp)):
        path = os.path.join(tmp, name)
        if scope.old_path(path):
            report.add("content", "temp-file", ORPHAN, path,
                       "an interrupted blob write", partial(_remove, path))
    ingest = os.path.join(content.root, "ingest")
    for name in sorted(os.listdir(ingest)):
        path = os.path.join(ingest, name)
        if scope.old_path(path) and not _locked(path):
            report.add("content", "partial-download", ORPHAN, path,
                       "an interrupted download (a pull would resume it)",
                       partial(_remove, path))
    for name in sorted(os.listdir(content.root)):
        path = os.path.join(content.root, name)
        if name.startswith("build-layer-") and scope.old_path(path):
            report.add("content", "temp-file", ORPHAN, path,
                       "an interrupted build's layer spool", partial(_remove, path))
