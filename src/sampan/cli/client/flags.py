"""Docker's flag syntax (spf13/pflag) parsed from a per-command table.

``-itd``, ``-p80:80``, ``-e=A``, ``--name x``, ``--name=x``, ``--rm=false``, ``--`` and,
for run/create/exec, flags only before the first positional (the image's own arguments
follow it untouched). argparse is not used: it costs ~10 ms and parses differently.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BOOL, STR, LIST, INT = "bool", "str", "list", "int"


class UsageError(Exception):
    """A command line docker refuses: exit status 125, with "See 'docker X --help'"."""


class Opt:
    """A flag: "d,detach" is -d and --detach; further long names are aliases."""

    __slots__ = ("aliases", "default", "dest", "help", "kind", "long", "short")

    def __init__(self, names: str, kind: str = BOOL, help_: str = "",
                 default: Any = None) -> None:
        short = ""
        longs = []
        for name in names.split(","):
            if len(name) == 1:
                short = name
            else:
                longs.append(name)
        long = longs[0] if longs else ""
        self.aliases = tuple(longs)
        self.short, self.long, self.kind, self.help = short, long, kind, help_
        self.dest = (long or short).replace("-", "_")
        if default is None:
            default = {BOOL: False, LIST: None, INT: None, STR: None}[kind]
        self.default = default


class Parsed:
    """Flag values by dest, the positionals, and which flags were given."""

    def __init__(self, values: dict[str, Any], args: list[str], given: set[str]) -> None:
        self.values, self.args, self.given = values, args, given

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def _bool(text: str, name: str) -> bool:
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise UsageError(f'invalid argument "{text}" for "{name}" flag: strconv.ParseBool: '
                     f'parsing "{text}": invalid syntax')


def parse(opts: list[Opt], argv: list[str], interspersed: bool = True) -> Parsed:
    """Parse ``argv``; ``--help`` gives dest ``help``."""
    by_long = {name: o for o in opts for name in o.aliases}
    by_short = {o.short: o for o in opts if o.short}
    values: dict[str, Any] = {o.dest: (list(o.default) if isinstance(o.default, list)
                                       else o.default) for o in opts}
    values["help"] = False
    given: set[str] = set()
    args: list[str] = []

    def store(opt: Opt, name: str, value: str | None) -> None:
        given.add(opt.dest)
        if opt.kind == BOOL:
            values[opt.dest] = True if value is None else _bool(value, name)
        elif opt.kind == INT:
            try:
                values[opt.dest] = int(value or "")
            except ValueError:
                raise UsageError(f'invalid argument "{value}" for "{name}" flag: '
                                 f'strconv.ParseInt: parsing "{value}": invalid syntax') \
                    from None
        elif opt.kind == LIST:
            values[opt.dest] = (values[opt.dest] or []) + [value]
        else:
            values[opt.dest] = value

    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args += argv[i:]
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            if name == "help":
                values["help"] = True
                continue
            opt = by_long.get(name)
            if opt is None:
                raise UsageError(f"unknown flag: --{name}")
            if opt.kind != BOOL and not eq:
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: --{name}")
                value, i = argv[i], i + 1
            store(opt, f"--{name}", value if eq or opt.kind != BOOL else None)
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                ch = arg[j]
                opt = by_short.get(ch)
                if opt is None:
                    if ch == "h" and "h" not in by_short:
                        values["help"] = True
                        j += 1
                        continue
                    raise UsageError(f"unknown shorthand flag: '{ch}' in {arg}")
                rest = arg[j + 1:]
                if opt.kind == BOOL:
                    if rest.startswith("="):
                        store(opt, f"-{ch}", rest[1:])
                        break
                    store(opt, f"-{ch}", None)
                    j += 1
                    continue
                if rest:
                    store(opt, f"-{ch}", rest[1:] if rest.startswith("=") else rest)
                elif i < len(argv):
                    store(opt, f"-{ch}", argv[i])
                    i += 1
                else:
                    raise UsageError(f"flag needs an argument: '{ch}' in -{ch}")
                break
        else:
            args.append(arg)
            if not interspersed:
                args += argv[i:]
                break
    return Parsed(values, args, given)


def usage(command: str, synopsis: str, description: str, opts: list[Opt]) -> str:
    """The --help text, laid out as docker's."""
    lines = [f"\nUsage:  docker {command} {synopsis}".replace("docker", "sampan", 1),
             "", description, ""]
    if opts:
        lines.append("Options:")
        rows = []
        for o in sorted(opts, key=lambda o: o.long or o.short):
            names = (f"-{o.short}, " if o.short else "    ") + (f"--{o.long}" if o.long
                                                                 else "")
            kind = {BOOL: "", STR: " string", LIST: " list", INT: " int"}[o.kind]
            rows.append((f"  {names}{kind}", o.help))
        width = max(len(r[0]) for r in rows) + 3
        lines += [f"{a:<{width}}{b}".rstrip() for a, b in rows]
    return "\n".join(lines) + "\n"
