"""Directory trees removed off the caller's path.

Removing a container (its record directory, its writable layer) is a rename and then many
unlinks; only the rename has to happen before the removal is answered: it takes the tree
away from every reader at once. The unlinks go to a background thread. Entries a crash
leaves in the trash are removed by the next Trash opened on it (the daemon's next start).
"""

from __future__ import annotations

import errno
import os
import queue
import secrets
import shutil
import threading


class Trash:
    def __init__(self, path: str) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        os.makedirs(path, mode=0o700, exist_ok=True)
        for name in os.listdir(path):  # a crash's leftovers
            self._empty(os.path.join(path, name))

    def discard(self, directory: str) -> None:
        """Take ``directory`` away now (nothing in it may be mounted) and remove it later;
        at once where the trash is on another filesystem. A missing one is no error."""
        target = os.path.join(self.path, secrets.token_hex(8))
        try:
            os.rename(directory, target)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.rmtree(directory, ignore_errors=True)
            return
        self._empty(target)

    def _empty(self, target: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="trash", daemon=True)
            self._thread.start()
        self._queue.put(target)

    def _run(self) -> None:
        while (target := self._queue.get()) is not None:
            shutil.rmtree(target, ignore_errors=True)

    def close(self) -> None:
        """Finish the removals under way."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
