"""Build contexts for the build tests: real files on disk, made the same way each time."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

DOCKERFILES = Path(__file__).parent / "dockerfiles"
DOCKERIGNORE = """\
# comments and blank lines are skipped

*.log
ignored/
**/*.tmp
!keep.log
"""


def make_context(where: Path, dockerfile: str) -> Path:
    """A context directory with ``dockerfile`` (a name under dockerfiles/) as Dockerfile."""
    root = where / dockerfile.removesuffix(".Dockerfile")
    if root.exists():
        shutil.rmtree(root)
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("hello\n")
    (root / "b.txt").write_text("bee\n")
    (root / "sub" / "b").write_text("x\n")
    (root / "sub" / "deep" / "c").write_text("deep\n")
    os.chmod(root / "sub" / "deep" / "c", 0o600)
    os.chmod(root / "sub" / "deep", 0o750)
    (root / "sub" / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(root / "sub" / "run.sh", 0o755)
    os.symlink("a.txt", root / "link")
    (root / "ignored").mkdir()
    (root / "ignored" / "secret").write_text("no\n")
    (root / "debug.log").write_text("no\n")
    (root / "keep.log").write_text("yes\n")
    (root / "sub" / "x.tmp").write_text("no\n")
    (root / ".dockerignore").write_text(DOCKERIGNORE)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("inner/file.txt", b"inside\n"), ("top.txt", b"top\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    (root / "arch.tar.gz").write_bytes(buf.getvalue())
    shutil.copy(DOCKERFILES / dockerfile, root / "Dockerfile")
    return root
