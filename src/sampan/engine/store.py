"""Container records on disk: one directory per container under <data-root>/containers,
its record in ``container.json`` replaced atomically (``statefile.save``), so a daemon
killed at any moment leaves the old record or the new one, never half of one."""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import suppress

from .. import statefile
from ..trash import Trash
from .record import Container

RECORD = "container.json"
log = logging.getLogger(__name__)


class ContainerStore:
    def __init__(self, root: str, trash: Trash | None = None) -> None:
        self.root = os.path.abspath(root)
        self.trash = trash
        os.makedirs(self.root, mode=0o710, exist_ok=True)

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def create_dir(self, container_id: str) -> str:
        path = self.dir(container_id)
        os.mkdir(path, 0o710)
        return path

    def save(self, container: Container) -> None:
        statefile.save(os.path.join(self.dir(container.id), RECORD), container.to_json())

    def load_all(self) -> list[Container]:
        """Every stored container. A directory without a record is a crash's leftover from
        a create, and is removed; one whose record cannot be read is left for ``sampan
        system check`` to report, never deleted on a guess."""
        out = []
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name, RECORD)
            try:
                with open(path) as f:
                    out.append(Container.from_json(json.load(f)))
            except FileNotFoundError:
                with suppress(OSError):
                    if not os.path.ismount(os.path.join(self.root, name, "rootfs")):
                        shutil.rmtree(os.path.join(self.root, name))
            except (OSError, ValueError, TypeError) as exc:
                log.error("container %s: unreadable record %s: %s", name[:12], path, exc)
        return out

    def remove(self, container_id: str) -> None:
        """Its directory, with nothing mounted in it any more."""
        if self.trash is not None:
            self.trash.discard(self.dir(container_id))
        else:
            shutil.rmtree(self.dir(container_id), ignore_errors=True)
