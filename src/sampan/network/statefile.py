"""Atomic JSON state: written beside, fsync'd and renamed, so a crash leaves old or new."""

from __future__ import annotations

import json
import os
from typing import Any


def load(path: str) -> Any:
    """The document at ``path``, or None when it was never written."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save(path: str, document: Any) -> None:
    """Replace ``path`` with ``document``; readers see either the old or the new file."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(document, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
