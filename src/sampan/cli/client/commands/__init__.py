"""One module per command group, imported only when one of its commands runs."""

from __future__ import annotations

import sys

from .. import flags
from ..api import APIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..flags import Opt


def parse(name: str, synopsis: str, text: str, opts: list[Opt], argv: list[str],
          min_args: int = 0, max_args: int | None = None,
          interspersed: bool = True) -> flags.Parsed | None:
    """Parse a command line; None when --help was shown. Wrong argument counts are
    docker's usage errors."""
    p = flags.parse(opts, argv, interspersed)
    if p.help:
        sys.stdout.write(flags.usage(name, synopsis, text, opts))
        return None
    n = len(p.args)
    if n < min_args or (max_args is not None and n > max_args):
        if max_args == min_args:
            want = f"exactly {min_args} argument{'s' if min_args != 1 else ''}"
        elif n < min_args:
            want = f"at least {min_args} argument{'s' if min_args != 1 else ''}"
        else:
            want = f"at most {max_args} argument{'s' if max_args != 1 else ''}"
        raise flags.UsageError(f'"sampan {name}" requires {want}.\n'
                               f"Usage:  sampan {name} {synopsis}\n\n{text}")
    return p


def each(names: list[str], action: Callable[[str], object],
         echo: bool = True) -> int:
    """Apply ``action`` to every name, as docker does for stop/rm/kill…: errors are
    printed and the rest still done; status 1 if any failed."""
    failed = False
    for name in names:
        try:
            result = action(name)
        except APIError as exc:
            print(f"Error response from daemon: {exc.message}", file=sys.stderr)
            failed = True
            continue
        if echo:
            print(result if isinstance(result, str) else name)
    return 1 if failed else 0


def confirm(message: str, force: bool) -> bool:
    """docker's prune prompt: "Are you sure you want to continue? [y/N]"."""
    if force:
        return True
    sys.stdout.write(f"{message}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def key_values(items: list[str] | None) -> dict[str, str]:
    """["k=v", …] flags (--label, -o) as a mapping."""
    return {k: v for k, _, v in (i.partition("=") for i in items or [])}
