"""HostConfig.SecurityOpt, read as dockerd reads it, and the seccomp filter it leads to.

The docker CLI sends ``seccomp=<the profile's JSON>`` (it reads the file itself),
``seccomp=unconfined``, ``no-new-privileges[:true|false]``, ``apparmor=…`` and ``label=…``.
Anything else is dockerd's "invalid --security-opt" error. A privileged container runs
without seccomp, as in docker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import seccomp

UNCONFINED = "unconfined"
BUILTIN = "builtin"


@dataclass
class SecurityOptions:
    seccomp: str = ""  # "": the daemon's default; "unconfined"; "builtin"; a profile (JSON)
    no_new_privileges: bool | None = None  # None: the daemon's default
    apparmor: str = ""


@dataclass
class SecurityDefaults:
    """The daemon's side (--seccomp-profile, --no-new-privileges)."""

    seccomp: str = ""  # "" or "builtin": docker's default profile; "unconfined"; JSON text
    no_new_privileges: bool = False


def _bool(text: str) -> bool | None:
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    return None


def parse_security_opt(opts: list[str] | None) -> SecurityOptions:
    """SecurityOpt → options; ValueError with dockerd's message for a bad entry."""
    out = SecurityOptions()
    for opt in opts or []:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "disable":  # label=disable's old spelling: SELinux is not used here
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise ValueError(f'invalid --security-opt 1: "{opt}"')
        if key == "seccomp":
            out.seccomp = value
            if value not in (UNCONFINED, BUILTIN):
                seccomp.parse(value)  # refused now rather than at start
        elif key == "no-new-privileges":
            flag = _bool(value)
            if flag is None:
                raise ValueError(f'invalid --security-opt 2: "{opt}"')
            out.no_new_privileges = flag
        elif key == "apparmor":
            out.apparmor = value
        elif key != "label":
            raise ValueError(f'invalid --security-opt 2: "{opt}"')
    return out


def no_new_privileges(opts: SecurityOptions, defaults: SecurityDefaults) -> bool:
    if opts.no_new_privileges is None:
        return defaults.no_new_privileges
    return opts.no_new_privileges


def seccomp_for(opts: SecurityOptions, defaults: SecurityDefaults, privileged: bool,
                capabilities: list[str]) -> dict[str, Any] | None:
    """``linux.seccomp`` for a container (None: no filter)."""
    if privileged:
        return None
    choice = opts.seccomp
    if choice in ("", BUILTIN):  # as moby: the daemon's --seccomp-profile, else docker's
        choice = defaults.seccomp or BUILTIN
    if choice == UNCONFINED:
        return None
    profile = seccomp.default_profile() if choice == BUILTIN else seccomp.parse(choice)
    return seccomp.to_spec(profile, capabilities)
