"""The trash (sampan/trash.py) that sampand removes containers' directories and writable
layers through: gone from their place at once, unlinked in the background, never lost
track of across a crash. Library tests, no daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sampan.trash import Trash


def _tree(root: Path) -> Path:
    for d in ("a/b/c", "d"):
        (root / d).mkdir(parents=True)
        (root / d / "f").write_text("x")
    os.symlink("/etc/passwd", root / "a" / "link")  # removed, never followed
    return root


def _emptied(trash: Path, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while any(trash.iterdir()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_discarded_tree_leaves_its_place_at_once_and_the_disk_soon(tmp_path: Path) -> None:
    trash = Trash(str(tmp_path / "trash"))
    try:
        tree = _tree(tmp_path / "container")
        trash.discard(str(tree))
        assert not tree.exists()
        assert _emptied(tmp_path / "trash")
        assert os.path.exists("/etc/passwd")
        trash.discard(str(tmp_path / "never-was"))  # nothing to do, no error
    finally:
        trash.close()


def test_close_finishes_every_removal_under_way(tmp_path: Path) -> None:
    trash = Trash(str(tmp_path / "trash"))
    for i in range(20):
        trash.discard(str(_tree(tmp_path / f"c{i}")))
    trash.close()
    assert list((tmp_path / "trash").iterdir()) == []


def test_what_a_killed_process_left_in_the_trash_goes_at_the_next_open(
        tmp_path: Path) -> None:
    """A process killed before its thread emptied the trash: the next Trash on the same
    directory removes the leftovers."""
    trash_dir = tmp_path / "trash"
    code = ("import os, sys, threading\n"
            "from sampan import trash as t\n"
            "t.Trash._run = lambda self: threading.Event().wait()  # never empties\n"
            "tr = t.Trash(sys.argv[1]); tr.discard(sys.argv[2]); os._exit(0)\n")
    tree = _tree(tmp_path / "container")
    subprocess.run([sys.executable, "-c", code, str(trash_dir), str(tree)], check=True)
    assert not tree.exists() and len(list(trash_dir.iterdir())) == 1
    trash = Trash(str(trash_dir))
    try:
        assert _emptied(trash_dir)
    finally:
        trash.close()


def test_a_tree_on_another_filesystem_is_removed_in_place(tmp_path: Path) -> None:
    """rename(2) cannot cross filesystems: such a tree is removed at once instead."""
    other = Path("/dev/shm") / f"sampan-trash-test-{os.getpid()}"
    trash = Trash(str(tmp_path / "trash"))
    try:
        tree = _tree(other)
        trash.discard(str(tree))
        assert not tree.exists()
    finally:
        trash.close()
        subprocess.run(["rm", "-rf", str(other)], check=False)
