"""Go's text/template, the part docker's ``--format`` uses, with docker's functions.

Actions ``{{.A.B}}``, ``{{$v := …}}``, pipelines ``{{.Names | upper}}``, ``if``/``else
if``/``else``, ``range`` (with ``$i, $v :=``), ``with``, ``{{-``/``-}}`` trimming,
comments, parenthesised calls; Go's builtins (and, or, not, len, index, slice, print,
printf, println, eq, ne, lt, le, gt, ge) and docker's (json, join, split, lower, upper,
title, pad, truncate). Values print as Go's fmt prints them (``map[a:1]``, ``[x y]``,
``<nil>``, ``<no value>``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class TemplateError(Exception):
    pass


class _Missing:
    """A map key that is absent: Go prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()

# --- lexing ---------------------------------------------------------------------------


def _split(src: str) -> list[tuple[bool, str]]:
    """(is_action, text) pieces, with trim markers applied."""
    out: list[tuple[bool, str]] = []
    pos = 0
    while True:
        start = src.find("{{", pos)
        if start < 0:
            out.append((False, src[pos:]))
            return out
        text = src[pos:start]
        inner_start = start + 2
        if src.startswith("- ", inner_start) or src.startswith("-\t", inner_start) or \
                src.startswith("-\n", inner_start):
            text = text.rstrip(" \t\r\n")
            inner_start += 1
        if src[inner_start:].lstrip().startswith("/*"):
            end = src.find("*/", inner_start)
            close = src.find("}}", end if end >= 0 else inner_start)
        else:
            close = _find_close(src, inner_start)
        if close < 0:
            raise TemplateError("unclosed action")
        inner = src[inner_start:close]
        pos = close + 2
        trim_after = inner.endswith((" -", "\t-", "\n-"))
        if trim_after:
            inner = inner[:-1]
        out.append((False, text))
        if not inner.strip().startswith("/*"):
            out.append((True, inner))
        if trim_after:
            rest = src[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))


def _find_close(src: str, pos: int) -> int:
    """The ``}}`` ending an action, skipping quoted strings."""
    i = pos
    while i < len(src):
        ch = src[i]
        if ch in "\"'":
            i += 1
            while i < len(src) and src[i] != ch:
                i += 2 if src[i] == "\\" else 1
        elif ch == "`":
            i = src.find("`", i + 1)
            if i < 0:
                return -1
        elif src.startswith("}}", i):
            return i
        i += 1
    return -1


_DELIMS = "()|,"


def _tokens(action: str) -> list[str]:
    toks: list[str] = []
    i = 0
    while i < len(action):
        ch = action[i]
        if ch.isspace():
            i += 1
        elif ch in _DELIMS:
            toks.append(ch)
            i += 1
            if ch == ")" and i < len(action) and action[i] == ".":  # (x).Field
                j = i
                while j < len(action) and not action[j].isspace() and \
                        action[j] not in _DELIMS:
                    j += 1
                toks.append("CHAIN" + action[i:j])
                i = j
        elif ch == '"':
            j = i + 1
            while j < len(action) and action[j] != '"':
                j += 2 if action[j] == "\\" else 1
            toks.append(action[i:j + 1])
            i = j + 1
        elif ch == "`":
            j = action.index("`", i + 1)
            toks.append(action[i:j + 1])
            i = j + 1
        elif ch == "'":
            j = action.index("'", i + 1 + (action[i + 1] == "\\"))
            toks.append(action[i:j + 1])
            i = j + 1
        elif action.startswith(":=", i):
            toks.append(":=")
            i += 2
        elif ch == "=":
            toks.append("=")
            i += 1
        else:
            j = i
            while j < len(action) and not action[j].isspace() and action[j] not in _DELIMS \
                    and not action.startswith(":=", j) and action[j] != "=":
                j += 1
            toks.append(action[i:j])
            if j == i:
                raise TemplateError(f"unexpected {action[i]!r}")
            i = j
    return toks


# --- parsing ----------------------------------------------------------------------------
# Nodes are tuples: ("text", s) ("action", pipe) ("if"|"with", pipe, body, else)
# ("range", pipe, body, else); pipe = (decl_vars, is_assign, commands);
# command = [operand...]; operand = ("field", base, names) | ("lit", v) | ("var", name,
# names) | ("func", name) | ("pipe", pipe, names)


def _parse_operand(toks: list[str], i: int) -> tuple[Any, int]:
    tok = toks[i]
    if tok == "(":
        pipe, i = _parse_pipe(toks, i + 1, closing=")")
        names: list[str] = []
        if i < len(toks) and toks[i].startswith("CHAIN"):
            names = toks[i][6:].split(".")
            i += 1
        return ("pipe", pipe, names), i
    if tok.startswith("."):
        names = [n for n in tok[1:].split(".") if n] if tok != "." else []
        return ("field", None, names), i + 1
    if tok.startswith("$"):
        name, _, chain = tok.partition(".")
        return ("var", name, [n for n in chain.split(".") if n]), i + 1
    if tok.startswith('"'):
        return ("lit", _unquote(tok)), i + 1
    if tok.startswith("`"):
        return ("lit", tok[1:-1]), i + 1
    if tok.startswith("'"):
        return ("lit", ord(_unquote('"' + tok[1:-1] + '"'))), i + 1
    if tok in ("true", "false"):
        return ("lit", tok == "true"), i + 1
    if tok == "nil":
        return ("lit", None), i + 1
    if tok[0].isdigit() or (tok[0] in "+-" and len(tok) > 1):
        try:
            return ("lit", int(tok, 0)), i + 1
        except ValueError:
            try:
                return ("lit", float(tok)), i + 1
            except ValueError:
                raise TemplateError(f"bad number syntax: {tok!r}") from None
    if tok.isidentifier():
        return ("func", tok), i + 1
    raise TemplateError(f"unexpected {tok!r} in command")


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    if "\\" not in body:
        return body
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _parse_pipe(toks: list[str], i: int, closing: str | None = None,
                ) -> tuple[Any, int]:
    decls: list[str] = []
    assign = False
    # $x := or $i, $v :=
    j = i
    names: list[str] = []
    while j < len(toks) and toks[j].startswith("$") and "." not in toks[j]:
        names.append(toks[j])
        if j + 1 < len(toks) and toks[j + 1] == ",":
            j += 2
            continue
        j += 1
        break
    if names and j < len(toks) and toks[j] in (":=", "="):
        decls, assign, i = names, toks[j] == "=", j + 1
    commands: list[list[Any]] = []
    current: list[Any] = []
    while i < len(toks):
        tok = toks[i]
        if closing and tok == closing:
            i += 1
            break
        if tok == "|":
            if not current:
                raise TemplateError("missing command before '|'")
            commands.append(current)
            current = []
            i += 1
            continue
        operand, i = _parse_operand(toks, i)
        current.append(operand)
    else:
        if closing:
            raise TemplateError("unclosed left paren")
    if not current:
        raise TemplateError("missing value for command")
    commands.append(current)
    return (decls, assign, commands), i


def parse(src: str) -> list[Any]:
    pieces = _split(src)
    pos = 0

    def block(stop: tuple[str, ...]) -> tuple[list[Any], str, list[str]]:
        nonlocal pos
        nodes: list[Any] = []
        while pos < len(pieces):
            is_action, text = pieces[pos]
            pos += 1
            if not is_action:
                if text:
                    nodes.append(("text", text))
                continue
            toks = _tokens(text)
            if not toks:
                raise TemplateError("missing value for command")
            word = toks[0]
            if word in stop:
                return nodes, word, toks[1:]
            if word in ("if", "with", "range"):
                nodes.append(control(word, toks[1:]))
            elif word in ("end", "else"):
                raise TemplateError(f"unexpected {{{{{word}}}}}")
            elif word in ("define", "template", "block"):
                raise TemplateError(f"{word} is not supported")
            else:
                nodes.append(("action", _parse_pipe(toks, 0)[0]))
        if stop:
            raise TemplateError("unexpected EOF")
        return nodes, "", []

    def control(word: str, toks: list[str]) -> Any:
        if not toks:
            raise TemplateError(f"missing value for {word}")
        pipe = _parse_pipe(toks, 0)[0]
        body, ended, rest = block(("else", "end"))
        other: list[Any] = []
        if ended == "else":
            if rest and rest[0] in ("if", "with"):
                other = [control(rest[0], rest[1:])]
            else:
                other, _, _ = block(("end",))
        return (word, pipe, body, other)

    nodes, _, _ = block(())
    return nodes


# --- evaluation -------------------------------------------------------------------------


def go_str(value: Any) -> str:
    """fmt's %v."""
    if value is None:
        return "<nil>"
    if value is MISSING:
        return "<no value>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v)}"
                                 for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def go_float(value: float) -> str:
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mant, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mant}e{sign}{exp.lstrip('+-').zfill(2)}"
    return text


def truth(value: Any) -> bool:
    if value is None or value is MISSING or value is False:
        return False
    if isinstance(value, (int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def field(value: Any, name: str, args: list[Any] | None = None) -> Any:
    if isinstance(value, dict):
        method = getattr(type(value), name, None) if type(value) is not dict else None
        if method is not None:  # a method of a map type comes before its keys, as in Go
            return method(value, *(args or []))
        return value.get(name, MISSING)
    if value is None or value is MISSING:
        raise TemplateError(f"nil pointer evaluating interface {{}}.{name}")
    attr = getattr(value, name, MISSING)
    if attr is MISSING:
        raise TemplateError(f"can't evaluate field {name} in type "
                            f"{type(value).__name__}")
    if callable(attr):
        return attr(*(args or []))
    return attr


def _json(value: Any) -> str:
    """docker's json function: compact, HTML characters kept, except in the rows of
    ps/images/… whose MarshalJSON (Go's json.Marshal) escapes them."""
    import json

    if hasattr(value, "as_json"):
        text = json.dumps(value.as_json(), ensure_ascii=False, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return json.dumps(None if value is MISSING else value, ensure_ascii=False,
                      separators=(",", ":"))


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise TemplateError(f"error calling index: index out of range: {key}")
            value = value[key]
        elif value is None or value is MISSING:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"can't index item of type {type(value).__name__}")
    return value


def _printf(fmt: str, *args: Any) -> str:
    out = []
    i = n = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%" or i + 1 >= len(fmt):
            out.append(ch)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "-+ #0123456789.":
            j += 1
        verb, spec = fmt[j], fmt[i + 1:j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        arg = args[n] if n < len(args) else MISSING
        n += 1
        if verb in "vs":
            out.append(("%" + spec + "s") % go_str(arg))
        elif verb == "q":
            out.append(_json(go_str(arg)))
        elif verb in "dxXobeEfgG":
            out.append(("%" + spec + verb) % arg)
        elif verb == "t":
            out.append(go_str(bool(arg)))
        else:
            out.append(f"%!{verb}({go_str(arg)})")
    return "".join(out)


def _compare(op: str) -> Callable[..., bool]:
    def cmp(a: Any, b: Any) -> bool:
        try:
            return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        except TypeError:
            raise TemplateError(f"error calling {op}: incompatible types for "
                                "comparison") from None
    return cmp


def _slice(value: Any, *idx: int) -> Any:
    if len(idx) == 0:
        return value
    return value[idx[0]:idx[1]] if len(idx) > 1 else value[idx[0]:]


def _truncate(text: str, n: int) -> str:
    return text[:n]


def _pad(text: Any, before: int, after: int) -> str:
    return " " * before + go_str(text) + " " * after


FUNCS: dict[str, Callable[..., Any]] = {
    "not": lambda v: not truth(v),
    "len": lambda v: len(v) if v not in (None, MISSING) else 0,
    "index": _index,
    "slice": _slice,
    "print": lambda *a: "".join(go_str(v) if isinstance(v, str) or i == 0 or
                                isinstance(a[i - 1], str) else " " + go_str(v)
                                for i, v in enumerate(a)),
    "println": lambda *a: " ".join(go_str(v) for v in a) + "\n",
    "printf": _printf,
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "lt": _compare("lt"), "le": _compare("le"), "gt": _compare("gt"), "ge": _compare("ge"),
    "json": _json,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda s, sep: s.split(sep),
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "title": lambda s: go_str(s).title(),
    "pad": _pad,
    "truncate": _truncate,
}

# In a table's header row docker's functions pass the header text through.
HEADER_FUNCS = {**FUNCS, **{name: (lambda v, *_: v) for name in (
    "json", "join", "split", "lower", "upper", "title", "pad", "truncate")}}


class Template:
    def __init__(self, src: str) -> None:
        self.src = src
        self.nodes = parse(src)

    def render(self, data: Any, header: bool = False,
               funcs: dict[str, Callable[..., Any]] | None = None) -> str:
        out: list[str] = []
        funcs = {**(HEADER_FUNCS if header else FUNCS), **(funcs or {})}
        _Exec(funcs, data, out).nodes(self.nodes, data, [{"$": data}])
        return "".join(out)


class _Exec:
    def __init__(self, funcs: dict[str, Callable[..., Any]], root: Any,
                 out: list[str]) -> None:
        self.funcs, self.root, self.out = funcs, root, out

    def nodes(self, nodes: list[Any], dot: Any, scopes: list[dict[str, Any]]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                self.out.append(node[1])
            elif kind == "action":
                value = self.pipe(node[1], dot, scopes)
                if not node[1][0]:
                    self.out.append(go_str(value))
            elif kind in ("if", "with"):
                inner = [*scopes, {}]
                value = self.pipe(node[1], dot, inner)
                if truth(value):
                    self.nodes(node[2], value if kind == "with" else dot, inner)
                else:
                    self.nodes(node[3], dot, inner)
            else:
                self.range_(node, dot, scopes)

    def range_(self, node: Any, dot: Any, scopes: list[dict[str, Any]]) -> None:
        decls, _assign, commands = node[1]
        value = self.pipe(([], False, commands), dot, scopes)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {go_str(value)}")
        if not items:
            self.nodes(node[3], dot, scopes)
            return
        for key, item in items:
            scope: dict[str, Any] = {}
            if len(decls) == 1:
                scope[decls[0]] = item
            elif len(decls) == 2:
                scope[decls[0]], scope[decls[1]] = key, item
            self.nodes(node[2], item, [*scopes, scope])

    def pipe(self, pipe: Any, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        decls, assign, commands = pipe
        value: Any = MISSING
        for n, command in enumerate(commands):
            value = self.command(command, dot, scopes, value if n else MISSING, n > 0)
        if decls:
            if assign:
                for scope in reversed(scopes):
                    if decls[0] in scope:
                        scope[decls[0]] = value
                        break
                else:
                    raise TemplateError(f"undefined variable: {decls[0]}")
            else:
                scopes[-1][decls[0]] = value
        return value

    def command(self, command: list[Any], dot: Any, scopes: list[dict[str, Any]],
                piped: Any, has_piped: bool) -> Any:
        head = command[0]
        extra = [piped] if has_piped else []
        if head[0] == "func":
            name = head[1]
            if name in ("and", "or"):
                args = [self.operand(a, dot, scopes) for a in command[1:]] + extra
                result = args[0] if args else None
                for result in args:
                    if truth(result) != (name == "and"):
                        return result
                return result
            func = self.funcs.get(name)
            if func is None:
                raise TemplateError(f'function "{name}" not defined')
            args = [self.operand(a, dot, scopes) for a in command[1:]] + extra
            try:
                return func(*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, AttributeError) as exc:
                raise TemplateError(f"error calling {name}: {exc}") from None
        if head[0] == "field" and head[2] and (len(command) > 1 or extra):
            args = [self.operand(a, dot, scopes) for a in command[1:]] + extra
            base = self.chain(dot, head[2][:-1])
            return field(base, head[2][-1], args)
        if len(command) > 1 or extra:
            raise TemplateError(f"can't give argument to non-function {head}")
        return self.operand(head, dot, scopes)

    def operand(self, op: Any, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        kind = op[0]
        if kind == "lit":
            return op[1]
        if kind == "field":
            return self.chain(dot, op[2])
        if kind == "var":
            for scope in reversed(scopes):
                if op[1] in scope:
                    return self.chain(scope[op[1]], op[2])
            raise TemplateError(f"undefined variable: {op[1]}")
        if kind == "pipe":
            return self.chain(self.pipe(op[1], dot, scopes), op[2])
        func = self.funcs.get(op[1])
        if func is None:
            raise TemplateError(f'function "{op[1]}" not defined')
        return func()

    @staticmethod
    def chain(value: Any, names: list[str]) -> Any:
        for name in names:
            value = field(value, name)
        return value
