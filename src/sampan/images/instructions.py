"""Dockerfile instructions applied to an image's container config: `import --change` and
`commit --change`, as Docker's BuildFromConfig does them.

Only the instructions that change the config are allowed (CMD, ENTRYPOINT, ENV, EXPOSE,
HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); Docker 20.10 refuses
STOPSIGNAL here, newer Dockers and sampan take it. Words go through the Dockerfile shell
lexer (quotes, backslash escapes, ``$VAR``/``${VAR:-default}``) with the config's own
environment as it was before the instruction, so that ``ENV A=1 B=$A`` sets B from the
old A, exactly as `docker build` does. The error messages are Docker's.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..oci.image import ContainerConfig, HealthConfig

_SHELL = ["/bin/sh", "-c"]
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_MIN_INTERVAL = 1_000_000  # 1ms, Docker's container.MinimumDuration
_PROTOCOLS = ("tcp", "udp", "sctp")


class ChangeError(ValueError):
    """A change instruction Docker would refuse; the message is Docker's."""


# The shell lexer ---------------------------------------------------------------------------

class _Lexer:
    """buildkit's shell.Lex over one string: quote removal and variable expansion, with
    the Dockerfile's escape character (a backslash, or a backtick after ``# escape=``)."""

    def __init__(self, text: str, env: dict[str, str], escape: str = "\\") -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.pos += 1
        return char

    def words(self, split: bool) -> list[str]:
        """The words of the text (one word unless ``split``: whitespace separates them)."""
        out: list[str] = []
        word: list[str] = []
        started = False
        while self.pos < len(self.text):
            char = self.take()
            if split and char.isspace():
                if started:
                    out.append("".join(word))
                    word, started = [], False
                continue
            started = True
            word.append(self.unquoted(char))
        if started or not split:
            out.append("".join(word))
        return out

    def unquoted(self, char: str) -> str:
        """What ``char``, outside any quotes, (and what follows it) adds to the word."""
        if char == "'":
            return self.single_quoted()
        if char == '"':
            return self.double_quoted()
        if char == "$":
            return self.dollar()
        if char == self.escape:
            return self.take()
        return char

    def single_quoted(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise ChangeError(f"failed to process {self.text!r}: unexpected end of statement "
                              "while looking for matching single-quote")
        value, self.pos = self.text[self.pos:end], end + 1
        return value

    def double_quoted(self) -> str:
        out: list[str] = []
        while True:
            char = self.take()
            if char == "":
                raise ChangeError(f"failed to process {json.dumps(self.text)}: unexpected end "
                                  "of statement while looking for matching double-quote")
            if char == '"':
                return "".join(out)
            if char == "$":
                out.append(self.dollar())
            elif char == self.escape and self.peek() in ('"', "$", self.escape):
                out.append(self.take())
            else:
                out.append(char)

    def name(self) -> str:
        start = self.pos
        while self.peek() and _NAME_CHARS.match(self.peek()):
            self.pos += 1
        return self.text[start:self.pos]

    def dollar(self) -> str:
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        name = self.name()
        operator = ""
        if self.peek() == ":":
            operator = self.take()
        if self.peek() in ("-", "+", "?"):
            operator += self.take()
        elif operator:
            raise ChangeError(f"failed to process {self.text!r}: unsupported modifier "
                              f"({operator}{self.peek()}) in substitution")
        word = self.until_brace()
        value = self.env.get(name)
        if not operator:
            if word or not name:
                raise ChangeError(f"failed to process {self.text!r}: bad substitution")
            return value or ""
        empty_counts = operator.startswith(":")
        unset = value is None or (empty_counts and value == "")
        if operator.endswith("-"):
            return word if unset else value or ""
        if operator.endswith("+"):
            return "" if unset else word
        if unset:
            raise ChangeError(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""

    def until_brace(self) -> str:
        """The word of ``${name:-word}`` up to its closing brace, expanded."""
        out: list[str] = []
        while True:
            char = self.take()
            if char == "":
                raise ChangeError(f"failed to process {self.text!r}: missing '}}'")
            if char == "}":
                return "".join(out)
            out.append(self.unquoted(char))


def expand_word(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """One word, quotes removed and variables expanded (buildkit's ProcessWord)."""
    return _Lexer(text, env, escape).words(split=False)[0]


def expand_words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """The words of ``text``, split at unquoted blanks, then as ``expand_word``."""
    return _Lexer(text, env, escape).words(split=True)


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (Docker's parseWords); the
    escape character escapes nothing inside single quotes."""
    words: list[str] = []
    word = ""
    quote = ""
    escaped = False
    for char in text:
        if escaped:
            word += char
            escaped = False
        elif char == escape and quote != "'":
            word += char
            escaped = True
        elif quote:
            word += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            word += char
            quote = char
        elif char.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += char
    if word:
        words.append(word)
    return words


# Parsing -----------------------------------------------------------------------------------

def _lines(changes: Sequence[str]) -> list[str]:
    """The instructions of ``changes`` joined as one Dockerfile: comments dropped,
    backslash-continued lines joined."""
    out: list[str] = []
    pending = ""
    for line in "\n".join(changes).split("\n"):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        out.append((pending + line).lstrip())
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def _json_form(rest: str) -> list[str] | None:
    """The JSON array form of CMD/ENTRYPOINT/VOLUME/HEALTHCHECK CMD, if ``rest`` is one."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ChangeError("when using JSON array syntax, arrays must be comprised of strings "
                          "only")
    return value


def _command(rest: str) -> list[str]:
    """CMD/ENTRYPOINT arguments: the JSON form as is, the shell form through /bin/sh -c."""
    exec_form = _json_form(rest)
    if exec_form is not None:
        return exec_form
    return [*_SHELL, rest] if rest else list(_SHELL)


def pairs(keyword: str, rest: str, env: dict[str, str], escape: str = "\\",
          ) -> list[tuple[str, str]]:
    """ENV and LABEL: ``k=v ...`` (or the legacy ``k value``), keys and values expanded."""
    if not rest:
        raise ChangeError(f"{keyword} requires at least one argument")
    words = split_words(rest, escape)
    if "=" not in words[0]:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise ChangeError(f"{keyword} must have two arguments")
        return [(expand_word(parts[0], env, escape), expand_word(parts[1], env, escape))]
    found = []
    for word in words:
        if "=" not in word:
            raise ChangeError(f'Syntax error - can\'t find = in "{word}". Must be of the form: '
                              "name=value")
        key, _, value = word.partition("=")
        found.append((expand_word(key, env, escape), expand_word(value, env, escape)))
    return found


def _port_range(text: str) -> range:
    start, sep, end = text.partition("-")
    try:
        first = int(start)
        last = int(end) if sep else first
    except ValueError:
        first, last = 0, -1
    if not (0 < first <= 65535 and 0 < last <= 65535 and first <= last):
        raise ChangeError(f"Invalid containerPort: {text}")
    return range(first, last + 1)


def exposed_ports(specs: Sequence[str]) -> list[str]:
    """``80``, ``8000-8002/udp``, ``1.2.3.4:80:81``: the ``port/proto`` keys they expose."""
    out: list[str] = []
    for spec in specs:
        port, _, proto = spec.partition("/")
        proto = proto.lower() or "tcp"
        if proto not in _PROTOCOLS:
            raise ChangeError(f"Invalid proto: {proto}")
        out.extend(f"{n}/{proto}" for n in _port_range(port.rsplit(":", 1)[-1]))
    return out


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds (``1m30s``, ``300ms``, ``1.5h``)."""
    match = re.fullmatch(r"([-+]?)((?:[0-9]*\.?[0-9]+(?:ns|us|µs|μs|ms|s|m|h))+|0)", text)
    if not match:
        raise ChangeError(f'time: invalid duration "{text}"')
    total = 0.0
    for number, unit in re.findall(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)", match[2]):
        total += float(number) * _DURATION_UNITS[unit]
    return -round(total) if match[1] == "-" else round(total)


def parse_healthcheck(rest: str) -> HealthConfig:
    """HEALTHCHECK's arguments (``--interval=…`` flags, then ``NONE`` or ``CMD …``)."""
    flags: dict[str, str] = {}
    while match := re.match(r"--(\S*)\s*", rest):
        name, _, value = match[1].partition("=")
        if name not in ("interval", "timeout", "start-period", "retries"):
            raise ChangeError(f"Unknown flag: {name}")
        flags[name] = value
        rest = rest[match.end():]
    if not rest:
        raise ChangeError("HEALTHCHECK requires at least one argument")
    kind, command = [*rest.split(None, 1), ""][:2]
    kind, command = kind.upper(), command.strip()
    if kind == "NONE":
        if command:
            raise ChangeError("HEALTHCHECK NONE takes no arguments")
        return HealthConfig(test=["NONE"])
    if kind != "CMD":
        raise ChangeError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    exec_form = _json_form(command)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]
    if len(test) == 1 or test == ["CMD-SHELL", ""]:
        raise ChangeError("Missing command after HEALTHCHECK CMD")
    health = HealthConfig(test=test)
    for name, attr in (("interval", "interval"), ("timeout", "timeout"),
                       ("start-period", "start_period")):
        if flags.get(name):
            value = parse_duration(flags[name])
            if value < _MIN_INTERVAL:
                raise ChangeError(f'Interval "{name}" cannot be less than 1ms')
            setattr(health, attr, value)
    if flags.get("retries"):
        try:
            retries = int(flags["retries"])
        except ValueError:
            raise ChangeError(f'strconv.ParseInt: parsing "{flags["retries"]}": invalid '
                              "syntax") from None
        if retries < 1:
            raise ChangeError(f"--retries must be at least 1 (not {retries})")
        health.retries = retries
    return health


def check_signal(text: str) -> str:
    """A stop signal as Docker's ParseSignal accepts it (a number, or a name with or
    without SIG)."""
    if text.isdigit():
        if int(text) == 0 or int(text) > signal.SIGRTMAX:
            raise ChangeError(f"Invalid signal: {text}")
        return text
    name = text.upper().removeprefix("SIG")
    if name in {s.name.removeprefix("SIG") for s in signal.Signals}:
        return text
    match = re.fullmatch(r"RT(MIN|MAX)([+-]\d+)?", name)
    if match and abs(int(match[2] or 0)) <= signal.SIGRTMAX - signal.SIGRTMIN:
        return text
    raise ChangeError(f"Invalid signal: {text}")


# Applying ----------------------------------------------------------------------------------

@dataclass
class _State:
    config: ContainerConfig
    cmd_set: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def refresh_env(self) -> None:
        self.env = {k: v for k, _, v in (e.partition("=") for e in self.config.env or [])}


def _cmd(state: _State, rest: str) -> None:
    state.config.cmd = _command(rest)
    state.cmd_set = True


def _entrypoint(state: _State, rest: str) -> None:
    state.config.entrypoint = _command(rest)
    if not state.cmd_set:  # a new entrypoint drops the inherited command
        state.config.cmd = None


def _env(state: _State, rest: str) -> None:
    env = list(state.config.env or [])
    for key, value in pairs("ENV", rest, state.env):
        item = f"{key}={value}"
        at = next((i for i, e in enumerate(env) if e.partition("=")[0] == key), None)
        if at is None:
            env.append(item)
        else:
            env[at] = item
    state.config.env = env
    state.refresh_env()


def _label(state: _State, rest: str) -> None:
    labels = dict(state.config.labels or {})
    labels.update(pairs("LABEL", rest, state.env))
    state.config.labels = labels


def _expose(state: _State, rest: str) -> None:
    if not rest:
        raise ChangeError("EXPOSE requires at least one argument")
    specs = [w for raw in rest.split() for w in expand_words(raw, state.env) if w]
    ports = dict(state.config.exposed_ports or {})
    ports.update((p, {}) for p in exposed_ports(specs))
    state.config.exposed_ports = ports or None


def _volume(state: _State, rest: str) -> None:
    exec_form = _json_form(rest)
    paths = exec_form if exec_form is not None else \
        [expand_word(w, state.env) for w in rest.split()]
    if not paths:
        raise ChangeError("VOLUME requires at least one argument")
    volumes = dict(state.config.volumes or {})
    for path in paths:
        if not path.strip():
            raise ChangeError("VOLUME specified can not be an empty string")
        volumes[path.strip()] = {}
    state.config.volumes = volumes


def _one_argument(keyword: str, rest: str, env: dict[str, str]) -> str:
    if not rest:
        raise ChangeError(f"{keyword} requires exactly one argument")
    return expand_word(rest, env)


def _user(state: _State, rest: str) -> None:
    state.config.user = _one_argument("USER", rest, state.env)


def _workdir(state: _State, rest: str) -> None:
    path = _one_argument("WORKDIR", rest, state.env)
    if not path.startswith("/"):
        path = posixpath.normpath(posixpath.join("/", state.config.working_dir or "/", path))
    state.config.working_dir = path


def _stopsignal(state: _State, rest: str) -> None:
    state.config.stop_signal = check_signal(_one_argument("STOPSIGNAL", rest, state.env))


def _onbuild(state: _State, rest: str) -> None:
    trigger = rest.split(None, 1)[0].upper() if rest else ""
    if not trigger:
        raise ChangeError("ONBUILD requires at least one argument")
    if trigger == "ONBUILD":
        raise ChangeError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise ChangeError(f"{trigger} isn't allowed as an ONBUILD trigger")
    state.config.on_build = [*(state.config.on_build or []), rest]


def _health(state: _State, rest: str) -> None:
    state.config.healthcheck = parse_healthcheck(rest)


_DISPATCH: dict[str, Callable[[_State, str], None]] = {
    "cmd": _cmd, "entrypoint": _entrypoint, "env": _env, "expose": _expose,
    "healthcheck": _health, "label": _label, "onbuild": _onbuild, "stopsignal": _stopsignal,
    "user": _user, "volume": _volume, "workdir": _workdir,
}


def apply_changes(config: ContainerConfig | None, changes: Sequence[str]) -> ContainerConfig:
    """A copy of ``config`` with the Dockerfile instructions ``changes`` applied."""
    base = config or ContainerConfig()
    state = _State(config=dataclasses.replace(base))
    state.refresh_env()
    lines = _lines(changes)
    keywords = [line.split(None, 1)[0].lower() for line in lines]
    for keyword in keywords:  # all are checked before any is applied, as Docker does
        if keyword not in _DISPATCH:
            raise ChangeError(f"{keyword} is not a valid change command")
    for keyword, line in zip(keywords, lines, strict=True):
        rest = line[len(keyword):].lstrip()
        if keyword != "onbuild":
            rest = rest.rstrip()
        _DISPATCH[keyword](state, rest)
    return state.config
