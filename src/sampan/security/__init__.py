"""Containers' security defaults as Docker's: the default seccomp profile, SecurityOpt."""

from .options import SecurityDefaults, SecurityOptions, parse_security_opt, seccomp_for
from .seccomp import ProfileError

__all__ = ["ProfileError", "SecurityDefaults", "SecurityOptions", "parse_security_opt",
           "seccomp_for"]
