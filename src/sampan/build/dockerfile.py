"""The Dockerfile parser: text to a list of instructions, as buildkit's parser reads it.

Parser directives (``# syntax=``, ``# escape=``) are read only at the top, before any
comment, blank line or instruction. Comment lines are dropped, also inside a continued
instruction; a line ending in the escape character continues on the next one. ``RUN``,
``COPY`` and ``ADD`` take heredocs (``<<EOF``, ``<<-EOF`` strips leading tabs, a quoted
delimiter turns expansion off). Words are not expanded here: which instructions expand
variables, and with which environment, is the builder's business. Every error names the
line it is on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

INSTRUCTIONS = frozenset({
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
    "workdir",
})
HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})
# Instructions whose arguments may be a JSON array (the exec form).
JSON_INSTRUCTIONS = frozenset({"run", "cmd", "entrypoint", "shell", "volume", "copy", "add"})
# Instructions that take --flags before their arguments.
FLAG_INSTRUCTIONS = frozenset({"from", "run", "copy", "add"})

_BOOLEAN_FLAGS = frozenset({"link", "parents"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([a-zA-Z_][a-zA-Z0-9_]*)\2")
_FLAG = re.compile(r"^--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?(?:\s+|$)")


class ParseError(ValueError):
    """A Dockerfile that cannot be read; the message names the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"dockerfile parse error line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # False when the delimiter was quoted
    strip_tabs: bool = False


@dataclass
class Instruction:
    keyword: str  # lower case
    args: str  # the text after the keyword and its flags, continuation lines joined
    line: int  # where it starts (1-based)
    original: str  # the instruction as written, continuations joined (for messages)
    flags: dict[str, str] = field(default_factory=dict)
    heredocs: list[Heredoc] = field(default_factory=list)
    json_args: list[str] | None = None  # the exec (JSON array) form, if used

    def __str__(self) -> str:
        return self.original


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    syntax: str | None = None


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """The parser directives at the top and the index of the first line after them."""
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        match = _DIRECTIVE.match(line.strip())
        if not match:
            return found, i
        name = match.group(1).lower()
        if name not in ("syntax", "escape", "check"):
            return found, i  # an unknown directive is a comment, and ends the directives
        if name in found:
            raise ParseError(i + 1, f"only one {name} parser directive can be used")
        found[name] = match.group(2)
    return found, len(lines)


def json_array(text: str) -> list[str] | None:
    """``text`` as the exec form (a JSON array of strings), or None for the shell form."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def split_flags(text: str, line: int) -> tuple[dict[str, str], str]:
    """Leading ``--name=value`` flags and the rest."""
    flags: dict[str, str] = {}
    rest = text
    while rest.startswith("--"):
        match = _FLAG.match(rest)
        if not match:
            raise ParseError(line, f"invalid flag: {rest.split()[0]}")
        if match.group(2) is None:
            if match.group(1) not in _BOOLEAN_FLAGS:
                raise ParseError(line, f"invalid flag --{match.group(1)}: it needs a value "
                                 f"(--{match.group(1)}=...)")
            flags[match.group(1)] = "true"
        else:
            flags[match.group(1)] = match.group(2) or ""
        rest = rest[match.end():]
    return flags, rest


def _read_heredocs(text: str, keyword: str, lines: list[str], pos: int, start: int,
                   ) -> tuple[list[Heredoc], int]:
    """The heredocs ``text`` opens, read from ``lines[pos:]``; the next line index."""
    if keyword not in HEREDOC_INSTRUCTIONS:
        return [], pos
    docs: list[Heredoc] = []
    for match in _HEREDOC.finditer(text):
        strip, quote, name = match.groups()
        body: list[str] = []
        while True:
            if pos >= len(lines):
                raise ParseError(start, f"unterminated heredoc {name}: no line {name!r} "
                                 "closes it")
            raw = lines[pos]
            pos += 1
            candidate = raw.lstrip("\t") if strip else raw
            if candidate == name:
                break
            body.append(candidate)
        content = "\n".join(body) + "\n" if body else ""
        docs.append(Heredoc(name=name, content=content, expand=not quote,
                            strip_tabs=bool(strip)))
    return docs, pos


def parse(text: str) -> Dockerfile:
    """Parse a Dockerfile; ``ParseError`` names the first line that cannot be read."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    directives, pos = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise ParseError(1, f"invalid escape token {escape!r} does not match ` or \\")
    instructions: list[Instruction] = []
    while pos < len(lines):
        start = pos + 1
        line = lines[pos].strip()
        pos += 1
        if not line or line.startswith("#"):
            continue
        parts = [line]
        while _continues(parts[-1], escape):
            parts[-1] = parts[-1].rstrip()[:-1]
            while pos < len(lines) and (not lines[pos].strip()
                                        or lines[pos].strip().startswith("#")):
                pos += 1  # blank and comment lines inside a continuation are dropped
            if pos >= len(lines):
                break
            parts.append(lines[pos].rstrip())
            pos += 1
        joined = "".join(parts).strip()
        keyword, _, rest = joined.partition(" ")
        if "\t" in keyword:
            keyword, _, tail = keyword.partition("\t")
            rest = tail + " " + rest
        lowered = keyword.lower()
        if lowered not in INSTRUCTIONS:
            raise ParseError(start, f"unknown instruction: {keyword.upper()}")
        rest = rest.strip()
        flags: dict[str, str] = {}
        if lowered in FLAG_INSTRUCTIONS:
            flags, rest = split_flags(rest, start)
        heredocs, pos = _read_heredocs(rest, lowered, lines, pos, start)
        exec_form = json_array(rest) if lowered in JSON_INSTRUCTIONS and not heredocs else None
        if not rest and lowered not in ("cmd", "entrypoint"):
            raise ParseError(start, f"{keyword.upper()} requires at least one argument")
        instructions.append(Instruction(keyword=lowered, args=rest, line=start,
                                        original=joined, flags=flags, heredocs=heredocs,
                                        json_args=exec_form))
    return Dockerfile(instructions=instructions, escape=escape,
                      syntax=directives.get("syntax"))


def _continues(line: str, escape: str) -> bool:
    """Whether ``line`` ends in the escape character (trailing blanks allowed)."""
    return line.rstrip(" \t").endswith(escape)
