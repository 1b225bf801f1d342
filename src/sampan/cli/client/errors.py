"""How a failing command ends, as docker's: the message on stderr and the status.

Usage errors are 125 with "See 'docker X --help'."; the daemon's refusals are
"Error response from daemon: …" with 1 (run and create: 125, as docker's).
"""

from __future__ import annotations

import sys

from . import flags
from .api import APIError, DaemonUnreachable
from .http import ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .main import Cli


class CommandError(Exception):
    """A failure the command reports itself: message and exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class StatusExit(Exception):
    """End with this status, printing nothing (a container's exit code)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


ENGINE_ERROR_STATUS = {"run": 125, "create": 125, "container run": 125,
                       "container create": 125}


def run_hint(name: str) -> str:
    """docker run/create end a daemon's refusal with a pointer to --help."""
    if name not in ENGINE_ERROR_STATUS:
        return ""
    return f"\n\nRun 'sampan {name} --help' for more information"


def run_command(command: Callable[[Cli, list[str]], int | None], cli: Cli, name: str,
                argv: list[str]) -> int:
    prefix = "sampan: " if name in ENGINE_ERROR_STATUS else ""
    try:
        return command(cli, argv) or 0
    except flags.UsageError as exc:
        print(f"{prefix}{exc}\n\nSee 'sampan {name} --help'.", file=sys.stderr)
        return 125
    except APIError as exc:
        print(f"{prefix}Error response from daemon: {exc.message}{run_hint(name)}",
              file=sys.stderr)
        return ENGINE_ERROR_STATUS.get(name, 1)
    except DaemonUnreachable as exc:
        print(f"{prefix}{exc}", file=sys.stderr)
        return ENGINE_ERROR_STATUS.get(name, 1)
    except ProtocolError as exc:
        print(f"{prefix}error during connect: {exc}", file=sys.stderr)
        return ENGINE_ERROR_STATUS.get(name, 1)
    except CommandError as exc:
        if str(exc):
            print(f"{prefix}{exc}", file=sys.stderr)
        return exc.status
    except StatusExit as exc:
        return exc.status
    except BrokenPipeError:
        return 0
