"""Signal numbers and handlers from `_signal`, for the container start path.

The `signal` module turns every number into an enum member at import (importing enum,
functools and collections with it): a few milliseconds of each `sampan-runtime run`.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # typeshed describes only `signal`

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SIGCHLD: int = _signal.SIGCHLD
SIGKILL: int = _signal.SIGKILL
SIGPIPE: int = _signal.SIGPIPE
SIGSTOP: int = _signal.SIGSTOP
SIGURG: int = _signal.SIGURG
SIGWINCH: int = _signal.SIGWINCH
SIGXFSZ: int = _signal.SIGXFSZ
SIG_DFL: int = _signal.SIG_DFL


def valid_signals() -> set[int]:
    return {int(s) for s in _signal.valid_signals()}


def install(sig: int, handler: Callable[[int, Any], None] | int) -> Any:
    """The previous handler (the `signal.signal` call, without its enum wrapping)."""
    return _signal.signal(sig, handler)


def set_wakeup_fd(fd: int) -> int:
    old: int = _signal.set_wakeup_fd(fd)
    return old


def block(sigs: set[int]) -> None:
    _signal.pthread_sigmask(_signal.SIG_BLOCK, sigs)


def unblock(sigs: set[int]) -> None:
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, sigs)
