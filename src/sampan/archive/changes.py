"""What changed in a container's layer: `docker diff`'s A/C/D list, from either snapshot kind.

For an overlay upper directory the changes are read off the upper directory (whiteouts are
deletions, opaque directories delete what the lower layers had there); for plain copies the
two trees are compared as Docker's naive differ does (mode, owner, device, and for
non-directories size and mtime, plus security.capability). Both give the same list for the
same container history, so callers need not care which snapshotter they have.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from .unpack import is_opaque, is_whiteout, lower_lookup

ADDED, CHANGED, DELETED = "A", "C", "D"
_CAPABILITY = "security.capability"


@dataclass(frozen=True, order=True)
class Change:
    path: str  # absolute inside the container: "/etc/passwd"
    kind: str  # "A", "C" or "D"

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def _scan(path: str) -> dict[str, os.stat_result]:
    try:
        with os.scandir(path) as entries:
            return {e.name: e.stat(follow_symlinks=False) for e in entries}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _lower_children(lowers: Sequence[str], rel: str) -> set[str]:
    """Names an overlay of ``lowers`` shows in directory ``rel``."""
    names: set[str] = set()
    hidden: set[str] = set()
    for layer in lowers:
        path = os.path.join(layer, rel) if rel else layer
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISDIR(st.st_mode):
            break
        for name, child in _scan(path).items():
            if name in hidden or name in names:
                continue
            if is_whiteout(child):
                hidden.add(name)
            else:
                names.add(name)
        if is_opaque(path):
            break
    return names


def overlay_changes(upper: str, lowers: Sequence[str]) -> list[Change]:
    """Changes recorded in an overlayfs upper directory over ``lowers`` (top first)."""
    changes: list[Change] = []

    def walk(rel: str) -> None:
        for name, st in sorted(_scan(os.path.join(upper, rel) if rel else upper).items()):
            child = f"{rel}/{name}" if rel else name
            if is_whiteout(st):
                if lower_lookup(lowers, child) is not None:
                    changes.append(Change("/" + child, DELETED))
                continue
            below = lower_lookup(lowers, child) if lowers else None
            changes.append(Change("/" + child, CHANGED if below else ADDED))
            if stat.S_ISDIR(st.st_mode):
                if below and stat.S_ISDIR(below[1].st_mode) \
                        and is_opaque(os.path.join(upper, child)):
                    present = set(_scan(os.path.join(upper, child)))
                    changes.extend(Change(f"/{child}/{gone}", DELETED)
                                   for gone in _lower_children(lowers, child) - present)
                walk(child)

    walk("")
    return sorted(changes)


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, _CAPABILITY, follow_symlinks=False)
    except OSError:
        return None


def _differs(old: os.stat_result, new: os.stat_result, old_path: str, new_path: str) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != \
            (new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    if not stat.S_ISDIR(new.st_mode) and (old.st_mtime_ns != new.st_mtime_ns
                                          or old.st_size != new.st_size):
        return True
    return _capability(old_path) != _capability(new_path)


def tree_changes(old: str | None, new: str) -> list[Change]:
    """Changes that turn the tree ``old`` (None: empty) into ``new``."""
    changes: list[Change] = []

    def walk(rel: str, old_dir: str | None, new_dir: str) -> bool:
        """Record changes below ``rel``; True if there were any."""
        start = len(changes)
        before = _scan(old_dir) if old_dir else {}
        for name, st in sorted(_scan(new_dir).items()):
            child = f"{rel}/{name}"
            new_path = os.path.join(new_dir, name)
            prior = before.pop(name, None)
            old_path = os.path.join(old_dir, name) if old_dir else None
            if prior is None:
                changes.append(Change(child, ADDED))
            elif _differs(prior, st, old_path or "", new_path):
                changes.append(Change(child, CHANGED))
            if stat.S_ISDIR(st.st_mode):
                mark = len(changes)
                inner_old = old_path if prior is not None and stat.S_ISDIR(prior.st_mode) \
                    else None
                recorded = mark > 0 and changes[mark - 1].path == child
                if walk(child, inner_old, new_path) and not recorded:
                    changes.insert(mark, Change(child, CHANGED))
        changes.extend(Change(f"{rel}/{gone}", DELETED) for gone in before)
        return len(changes) > start

    walk("", old, new)
    return sorted(changes)
