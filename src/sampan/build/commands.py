"""The instructions that only change the image config, applied to a build state's config,
each returning the text docker's classic builder records in the history (``ENV A=b``).

Words are expanded by the Dockerfile shell lexer (images.instructions) with the step's
environment: the config's Env plus the build args in use that Env does not override.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..images import instructions as lex
from ..images.instructions import ChangeError
from ..oci.decode import encode
from .dockerfile import Instruction
from .errors import BuildError

DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class StepEnv:
    """What a config instruction reads and writes besides the config itself."""

    config: dict[str, Any]
    document: dict[str, Any]
    env: dict[str, str]  # for expansion
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False
    escape: str = "\\"  # the Dockerfile's escape character


def go_quoted(items: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def go_duration(ns: int | None) -> str:
    """Go's time.Duration.String()."""
    ns = ns or 0
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1_000_000_000)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return sign + out + seconds + "s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def command_args(step: StepEnv, ins: Instruction) -> list[str]:
    """CMD/ENTRYPOINT/RUN arguments: the exec form as is, the shell form through SHELL."""
    if ins.json_args is not None:
        return ins.json_args
    return [*step.shell, ins.args] if ins.args else [*step.shell]


def _expand(step: StepEnv, text: str) -> str:
    return lex.expand_word(text, step.env, step.escape)


def _pairs(step: StepEnv, ins: Instruction) -> list[tuple[str, str]]:
    return lex.pairs(ins.keyword.upper(), ins.args, step.env, step.escape)


def _env(step: StepEnv, ins: Instruction) -> str:
    pairs = _pairs(step, ins)
    env = list(step.config.get("Env") or [])
    for key, value in pairs:
        item = f"{key}={value}"
        at = next((i for i, e in enumerate(env) if e.partition("=")[0] == key), None)
        if at is None:
            env.append(item)
        else:
            env[at] = item
        step.env[key] = value
    step.config["Env"] = env
    return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)


def _label(step: StepEnv, ins: Instruction) -> str:
    pairs = _pairs(step, ins)
    labels = dict(step.config.get("Labels") or {})
    labels.update(pairs)
    step.config["Labels"] = labels
    return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)


def _maintainer(step: StepEnv, ins: Instruction) -> str:
    step.document["author"] = _expand(step, ins.args)
    return "MAINTAINER " + step.document["author"]


def _expose(step: StepEnv, ins: Instruction) -> str:
    specs = [w for raw in ins.args.split()
             for w in lex.expand_words(raw, step.env, step.escape) if w]
    ports = dict(step.config.get("ExposedPorts") or {})
    ports.update((p, {}) for p in lex.exposed_ports(specs))
    step.config["ExposedPorts"] = ports
    return "EXPOSE " + " ".join(sorted(specs))


def _volume(step: StepEnv, ins: Instruction) -> str:
    paths = ins.json_args if ins.json_args is not None else \
        [w for raw in ins.args.split() for w in [_expand(step, raw)]]
    volumes = dict(step.config.get("Volumes") or {})
    for path in paths:
        if not path.strip():
            raise BuildError("VOLUME specified can not be an empty string")
        volumes[path.strip()] = {}
    step.config["Volumes"] = volumes
    return "VOLUME [" + " ".join(p.strip() for p in paths) + "]"


def _user(step: StepEnv, ins: Instruction) -> str:
    step.config["User"] = _expand(step, ins.args)
    return "USER " + step.config["User"]


def workdir(step: StepEnv, ins: Instruction) -> str:
    """WORKDIR (its directory is made by the builder, in a layer of its own)."""
    path = _expand(step, ins.args)
    if not path.startswith("/"):
        path = posixpath.join(step.config.get("WorkingDir") or "/", path)
    path = posixpath.normpath(path)
    step.config["WorkingDir"] = path
    return "WORKDIR " + path


def _cmd(step: StepEnv, ins: Instruction) -> str:
    step.config["Cmd"] = command_args(step, ins)
    step.cmd_set = True
    return "CMD " + go_quoted(step.config["Cmd"])


def _entrypoint(step: StepEnv, ins: Instruction) -> str:
    step.config["Entrypoint"] = command_args(step, ins)
    if not step.cmd_set:
        step.config["Cmd"] = None
    return "ENTRYPOINT " + go_quoted(step.config["Entrypoint"])


def _shell(step: StepEnv, ins: Instruction) -> str:
    if ins.json_args is None:
        raise BuildError("SHELL requires the arguments to be in JSON form")
    if not ins.json_args:
        raise BuildError("SHELL requires at least one argument")
    step.config["Shell"] = list(ins.json_args)
    step.shell = list(ins.json_args)
    return "SHELL [" + " ".join(ins.json_args) + "]"


def _stopsignal(step: StepEnv, ins: Instruction) -> str:
    step.config["StopSignal"] = lex.check_signal(_expand(step, ins.args))
    return "STOPSIGNAL " + step.config["StopSignal"]


def _healthcheck(step: StepEnv, ins: Instruction) -> str:
    health = lex.parse_healthcheck(ins.args)
    step.config["Healthcheck"] = encode(health)
    retries = health.retries or 0
    return (f"HEALTHCHECK &{{{go_quoted(health.test or [])} "
            f'"{go_duration(health.interval)}" "{go_duration(health.timeout)}" '
            f'"{go_duration(health.start_period)}" \'\\x{retries:02x}\'}}')


def _onbuild(step: StepEnv, ins: Instruction) -> str:
    trigger = ins.args.split(None, 1)[0].upper()
    if trigger == "ONBUILD":
        raise BuildError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise BuildError(f"{trigger} isn't allowed as an ONBUILD trigger")
    step.config["OnBuild"] = [*(step.config.get("OnBuild") or []), ins.args]
    return "ONBUILD " + ins.args


HANDLERS: dict[str, Callable[[StepEnv, Instruction], str]] = {
    "env": _env, "label": _label, "maintainer": _maintainer, "expose": _expose,
    "volume": _volume, "user": _user, "cmd": _cmd, "entrypoint": _entrypoint,
    "shell": _shell, "stopsignal": _stopsignal, "healthcheck": _healthcheck,
    "onbuild": _onbuild,
}


def apply(step: StepEnv, ins: Instruction) -> str:
    """Apply a config instruction; the history text. Docker's errors as BuildError."""
    try:
        return HANDLERS[ins.keyword](step, ins)
    except ChangeError as exc:
        raise BuildError(str(exc)) from None
