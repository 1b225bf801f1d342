"""Turning a forked child into the container's process: identity, limits, privileges, exec.

Shared by the container's init and by ``exec``. The order follows runc's: rlimits and
oom_score_adj while still privileged, then the capability bounding set, the user switch
(keeping permitted capabilities across setuid), the final capability sets, and seccomp as
late as the no_new_privs rule allows.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from ..kernel import syscalls as k
from ..oci.spec import ConfigError, Process, Rlimit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

CAP_SYS_RESOURCE = 24


class ExecNotFound(Exception):
    """The program does not exist in the container (docker's exit code 127)."""


def rlimit_number(name: str, field: str) -> int:
    value = k.RLIMITS.get(name)
    if value is None:
        raise ConfigError(f"{field}: unknown rlimit {name!r}")
    return value


def check_rlimits(rlimits: list[Rlimit] | None, field: str = "process.rlimits") -> None:
    """Refuse, before anything is created, limits the runtime is not allowed to set.

    Raising a hard limit needs CAP_SYS_RESOURCE; without it setrlimit fails with EPERM deep
    inside the container's set-up, so say which limit and why up front.
    """
    if not rlimits:
        return
    effective = k.capget()[0]
    privileged = bool(effective & (1 << CAP_SYS_RESOURCE))
    for i, rl in enumerate(rlimits):
        number = rlimit_number(rl.type, f"{field}[{i}].type")
        if privileged:
            continue
        _soft, hard = k.prlimit(number)
        if hard != k.RLIM_INFINITY and not 0 <= rl.hard <= hard:
            raise ConfigError(
                f"{field}[{i}]: {rl.type} hard limit {rl.hard} is above the current hard "
                f"limit {hard}, and raising it needs CAP_SYS_RESOURCE, which the runtime lacks")


def apply_rlimits(rlimits: list[Rlimit] | None) -> None:
    for rl in rlimits or []:
        k.prlimit(rlimit_number(rl.type, "process.rlimits"), (rl.soft, rl.hard))


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


def lookpath(name: str, env: list[str]) -> str:
    """Resolve the program as Go's exec.LookPath does, inside the container's root."""
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    present = False
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
        present = True
    if "/" in name and present:  # Go's findExecutable: a directory or a non-executable file
        raise ExecNotFound(f'exec: "{name}": permission denied')
    if "/" in name:
        raise ExecNotFound(f'exec: "{name}": stat {name}: no such file or directory')
    raise ExecNotFound(f'exec: "{name}": executable file not found in $PATH')


def with_home(env: list[str], uid: int) -> list[str]:
    """Add HOME from the container's /etc/passwd when the config has none, as runc does."""
    if any(e.startswith("HOME=") for e in env):
        return env
    home = "/"
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    home = fields[5] or "/"
                    break
    except OSError:
        pass
    return [*env, f"HOME={home}"]


def set_exec_labels(proc: Process) -> None:
    """The AppArmor profile and SELinux label the kernel puts on at execve (the runtime
    has already refused them when the host has no such LSM)."""
    if proc.apparmor_profile and proc.apparmor_profile != "unconfined":
        attr = "/proc/self/attr/apparmor/exec"
        if not os.path.exists(attr):
            attr = "/proc/self/attr/exec"
        with open(attr, "w") as f:
            f.write(f"exec {proc.apparmor_profile}")
    if proc.selinux_label:
        with open("/proc/self/attr/exec", "w") as f:
            f.write(proc.selinux_label)


def switch_user(proc: Process) -> None:
    """setgroups/setgid/setuid, keeping capabilities so the final sets can be applied."""
    user = proc.user
    k.set_keepcaps(True)
    try:
        os.setgroups(user.additional_gids or [])
    except PermissionError:
        # setgroups is denied in a user namespace whose gid_map was written unprivileged.
        if user.additional_gids:
            raise
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    k.set_keepcaps(False)


def close_inherited_fds(keep_upto: int) -> None:
    """Mark every fd above ``keep_upto`` close-on-exec so nothing leaks into the container."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > keep_upto:
            try:
                os.set_inheritable(fd, False)
            except OSError as exc:
                if exc.errno != errno.EBADF:
                    raise


def make_controlling_tty(slave: int) -> None:
    import termios  # (only for a terminal: a shared library to load)

    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def execve(path: str, args: list[str], env: list[str]) -> NoReturn:
    environ = dict(e.split("=", 1) for e in env)
    os.execve(path, args, environ)


def reset_ignored_signals() -> None:
    """Give the container's process default SIGPIPE and SIGXFSZ: Python ignores both at
    start-up, and an ignored signal survives execve. Left ignored, ``yes | head`` in a
    container never ends: yes spins on EPIPE instead of dying."""
    from ..kernel import signals

    for sig in (signals.SIGPIPE, signals.SIGXFSZ):
        signals.install(sig, signals.SIG_DFL)
