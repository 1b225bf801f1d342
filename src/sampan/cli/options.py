"""Command lines for the hot paths: flags declared once in a table, parsed directly.

argparse costs about 10 ms to import and build, paid by every `sampan-runtime create`
and `start` a container engine runs. Here a table of flags is parsed by a small loop;
argparse is built from the same table only when it has something to say: for ``--help``
and for a command line the loop does not accept (argparse then prints the usage error,
or parses what only it understands, such as abbreviated long options).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace
    from typing import Any
else:
    # as the `types` module itself defines it: importing `types` costs every command 0.3 ms
    SimpleNamespace = type(sys.implementation)

_KINDS = ("bool", "str", "int", "append", "append_int")


class Flag:
    __slots__ = ("choices", "default", "dest", "kind", "names")

    def __init__(self, *names: str, kind: str = "str", default: Any = None,
                 choices: tuple[str, ...] | None = None) -> None:
        assert kind in _KINDS
        self.names = names
        self.dest = names[0].lstrip("-").replace("-", "_")
        self.kind = kind
        self.choices = choices
        self.default = [] if kind.startswith("append") else (False if kind == "bool"
                                                              else default)


class Arg:
    """A positional: ``nargs`` None (one), "?" (optional), "+" (one or more) or "..."
    (everything after it, as given)."""

    __slots__ = ("default", "dest", "metavar", "nargs")

    def __init__(self, dest: str, nargs: str | None = None, default: Any = None,
                 metavar: str | None = None) -> None:
        self.dest, self.nargs, self.default, self.metavar = dest, nargs, default, metavar


class Command:
    __slots__ = ("args", "flags", "help")

    def __init__(self, help_: str, flags: list[Flag], args: list[Arg]) -> None:
        self.help, self.flags, self.args = help_, flags, args


def parse(prog: str, description: str, global_flags: list[Flag],
          commands: dict[str, Command], argv: list[str]) -> SimpleNamespace:
    """``command`` is None when the command line names none."""
    ns = _parse_fast(global_flags, commands, argv)
    if ns is None:
        parser = build_argparse(prog, description, global_flags, commands, argv)
        ns = SimpleNamespace(**vars(parser.parse_args(argv)))
    return ns


def _parse_fast(global_flags: list[Flag], commands: dict[str, Command],
                argv: list[str]) -> SimpleNamespace | None:
    ns = SimpleNamespace(command=None)
    by_name = _index(global_flags, ns)
    i, positionals, command = 0, [], None
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("-h", "--help"):
            return None
        if arg.startswith("-") and arg != "-":
            name, has_value, value = arg.partition("=")
            flag = by_name.get(name)
            if flag is None:
                return None
            if flag.kind == "bool":
                if has_value:
                    return None
                setattr(ns, flag.dest, True)
                continue
            if not has_value:
                if i >= len(argv):
                    return None
                value = argv[i]
                i += 1
            if not _store(ns, flag, value):
                return None
            continue
        if command is None:
            command = commands.get(arg)
            if command is None:
                return None
            ns.command = arg
            by_name.update(_index(command.flags, ns))
            continue
        positionals.append(arg)
        if command.args and command.args[-1].nargs == "..." and \
                len(positionals) == len(command.args) - 1:
            positionals.append(argv[i:])  # type: ignore[arg-type]
            break
    if command is None:
        return ns
    return ns if _assign(command.args, positionals, ns) else None


def _index(flags: list[Flag], ns: SimpleNamespace) -> dict[str, Flag]:
    by_name = {}
    for flag in flags:
        setattr(ns, flag.dest, list(flag.default) if isinstance(flag.default, list)
                else flag.default)
        for name in flag.names:
            by_name[name] = flag
    return by_name


def _store(ns: SimpleNamespace, flag: Flag, value: str) -> bool:
    if flag.choices and value not in flag.choices:
        return False
    if flag.kind in ("int", "append_int"):
        try:
            number = int(value)
        except ValueError:
            return False
        if flag.kind == "int":
            setattr(ns, flag.dest, number)
        else:
            getattr(ns, flag.dest).append(number)
    elif flag.kind == "append":
        getattr(ns, flag.dest).append(value)
    else:
        setattr(ns, flag.dest, value)
    return True


def _assign(args: list[Arg], given: list[Any], ns: SimpleNamespace) -> bool:
    given = list(given)
    for spec in args:
        if spec.nargs == "...":
            setattr(ns, spec.dest, given.pop(0) if given else [])
        elif spec.nargs == "+":
            if not given:
                return False
            setattr(ns, spec.dest, given)
            given = []
        elif spec.nargs == "?":
            setattr(ns, spec.dest, given.pop(0) if given else spec.default)
        else:
            if not given:
                return False
            setattr(ns, spec.dest, given.pop(0))
    return not given


def build_argparse(prog: str, description: str, global_flags: list[Flag],
                   commands: dict[str, Command], argv: list[str]) -> argparse.ArgumentParser:
    """The same command line as argparse sees it: for help texts and usage errors."""
    import argparse

    def add(parser: argparse.ArgumentParser, flags: list[Flag], args: list[Arg]) -> None:
        for flag in flags:
            kw: dict[str, Any] = {"dest": flag.dest}
            if flag.kind == "bool":
                kw["action"] = "store_true"
            elif flag.kind.startswith("append"):
                kw.update(action="append", default=[])
            else:
                kw["default"] = flag.default
            if flag.kind in ("int", "append_int"):
                kw["type"] = int
            if flag.choices:
                kw["choices"] = list(flag.choices)
            parser.add_argument(*flag.names, **kw)
        for spec in args:
            nargs = argparse.REMAINDER if spec.nargs == "..." else spec.nargs
            parser.add_argument(spec.dest, nargs=nargs, default=spec.default,
                                metavar=spec.metavar)

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add(parser, global_flags, [])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    named = next((a for a in argv if a in commands), None)
    for name, command in commands.items():
        child = sub.add_parser(name, help=command.help)
        if named in (None, name):
            add(child, command.flags, command.args)
    return parser


def print_help(prog: str, description: str, global_flags: list[Flag],
               commands: dict[str, Command]) -> None:
    build_argparse(prog, description, global_flags, commands, []).print_help(sys.stdout)
