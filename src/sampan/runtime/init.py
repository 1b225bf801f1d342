"""What runs in the forked children: entering namespaces and becoming the container.

Two processes, as runc's nsexec: stage 1 joins or unshares the namespaces (a user
namespace first, so the runtime can write its id maps), then forks stage 2, which is PID 1
of a new PID namespace and the container's init. Stage 2 builds the rootfs, pivots, drops
privileges, tells the runtime it is ready and blocks on exec.fifo until ``start``.
Both stages report failures over the channel, so the runtime can print them and clean up.

Stage 1 is there for what takes effect in a process's children only: joining a PID or
time namespace, and a user namespace whose id maps the runtime writes in between. Without
them (the usual `run`), the runtime forks the init itself (context.fork_init): one Python
process fewer to fork, run and reap on every start.

Only the children import this module (and rootfs and hooks with it): they load while
the runtime makes the container's cgroup, not on the way to the fork (context.py).
"""

from __future__ import annotations

import fcntl
import os
import struct

from ..kernel import caps, unixsock
from ..kernel import syscalls as k
from . import hooks, process, rootfs
from .channel import ChannelClosed
from .devices import DEFAULT_DEVICES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from .channel import Channel
    from .context import InitContext


def run_stage1(ctx: InitContext, runtime_end: Channel) -> NoReturn:
    try:
        runtime_end.close()
        _no_longer_dumpable(ctx)
        ctx.channel.expect("go")
        _enter_namespaces(ctx, ctx.new_namespaces)
        linux = ctx.spec.linux
        if ctx.new_namespaces & k.CLONE_NEWTIME and linux and linux.time_offsets:
            with open("/proc/self/timens_offsets", "w") as f:
                for clock, off in linux.time_offsets.items():
                    f.write(f"{clock} {off.secs} {off.nanosecs}\n")
        # Stage 2 waits until its pid is announced, so that the runtime reads "pid" before
        # anything stage 2 sends on the shared channel.
        announced_r, announced_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(announced_w)
            os.read(announced_r, 1)
            os.close(announced_r)
            run_stage2(ctx)
        ctx.channel.send("pid", pid=pid)
        os._exit(0)
    except BaseException as exc:
        _fail(ctx.channel, exc)


def run_init(ctx: InitContext, runtime_end: Channel) -> NoReturn:
    """The container's init forked by the runtime itself (context.single_fork)."""
    try:
        runtime_end.close()
        _no_longer_dumpable(ctx)
        _enter_namespaces(ctx, ctx.new_namespaces & ~k.CLONE_NEWPID)
        _become_container(ctx)
    except BaseException as exc:
        _fail(ctx.channel, exc)


def _no_longer_dumpable(ctx: InitContext) -> None:
    # Non-dumpable before entering any of the container's namespaces, as runc's
    # nsexec: a process in the container cannot then open /proc/<pid>/exe, mem, environ
    # or fd of the runtime's stages without CAP_SYS_PTRACE (the first half of
    # CVE-2019-5736's path to the host's interpreter). execve of the container's
    # process makes it dumpable again. With a user namespace the container's root is
    # no host root (so cannot write the interpreter), and a non-dumpable process's
    # /proc/self files would belong to the host's root, out of the stages' reach.
    if (ctx.join or ctx.new_namespaces) and not ctx.userns and "user" not in ctx.join:
        k.prctl(k.PR_SET_DUMPABLE, 0)


def _enter_namespaces(ctx: InitContext, new: int) -> None:
    """Join ``ctx.join``'s namespaces and unshare ``new`` ones (CLONE_* flags)."""
    # Open every namespace first: once in the container's mount namespace, the host's
    # /proc/<pid>/ns paths are gone.
    fds = {kind: _open_ns(path) for kind, path in ctx.join.items()}
    user = fds.pop("user", None)
    if user is not None or ctx.userns:
        # As runc's nsexec: join what we can while still the host's root (a network
        # namespace the engine made belongs to the host's user namespace, and a
        # process in a child user namespace may not enter it), then the user
        # namespace, then the rest (those owned by the container's user namespace).
        fds = _join_while_privileged(fds)
    if user is not None:
        _setns(user, ctx.join["user"], k.CLONE_NEWUSER)
    if ctx.userns:
        k.unshare(k.CLONE_NEWUSER)
        ctx.channel.send("userns")
        ctx.channel.expect("userns-done")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for kind, fd in fds.items():
        _setns(fd, ctx.join[kind], k.NAMESPACE_FLAGS[kind])
    if new:
        k.unshare(new)


def _join_while_privileged(fds: dict[str, int]) -> dict[str, int]:
    """setns into each namespace the host's root may enter; those refused (EPERM) are
    returned for after the user namespace."""
    left = {}
    for kind, fd in fds.items():
        try:
            k.setns(fd, k.NAMESPACE_FLAGS[kind])
        except PermissionError:
            left[kind] = fd
            continue
        os.close(fd)
    return left


def _open_ns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"opening namespace {path}: {exc.strerror}") from None


def _setns(fd: int, path: str, nstype: int) -> None:
    try:
        k.setns(fd, nstype)
    except OSError as exc:
        raise OSError(exc.errno, f"joining namespace {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _fail(channel: Channel, exc: BaseException) -> NoReturn:
    if isinstance(exc, ChannelClosed):  # the runtime gave up and reports its own error
        os._exit(1)
    if isinstance(exc, process.ExecNotFound | OSError | ValueError | hooks.HookError):
        message = str(exc)
    else:
        message = _describe(exc)
    try:
        channel.send("error", message=message)
    except OSError:
        # After "ready" the runtime no longer listens: the container's stderr is all
        # that is left to tell the user.
        os.write(2, f"sampan-runtime: {message}\n".encode())
    finally:
        os._exit(1)


def _describe(exc: BaseException) -> str:
    """An unexpected error with where it happened (the traceback module may be out of
    reach after pivot_root, so the frames are walked here)."""
    where = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        where.append(f"  {code.co_filename}:{tb.tb_lineno} in {code.co_name}")
        tb = tb.tb_next
    return "\n".join(["Traceback (most recent call last):", *where,
                      f"{type(exc).__name__}: {exc}"])


def run_stage2(ctx: InitContext) -> NoReturn:
    try:
        if ctx.is_exec:
            # The runtime moves us into the container's cgroup only now (as runc does), so
            # that forking the stages is not refused by a pids limit the container has hit.
            ctx.channel.expect("placed")
        _become_container(ctx)
    except BaseException as exc:
        _fail(ctx.channel, exc)


def _become_container(ctx: InitContext) -> NoReturn:
    spec, proc, linux = ctx.spec, ctx.process, ctx.spec.linux
    pty_slave = -1
    if not ctx.is_exec:
        # Before the rootfs: its cgroup mount may wait for the runtime's "created", and
        # none of these needs the rootfs.
        if spec.hostname is not None:
            k.sethostname(spec.hostname)
        if spec.domainname is not None:
            k.setdomainname(spec.domainname)
        if ctx.new_namespaces & k.CLONE_NEWNET:
            _loopback_up()
        if ctx.new_namespaces & k.CLONE_NEWNS:
            _prepare_rootfs(ctx)
    if proc.terminal:
        pty_slave = _open_console(ctx)
    if not ctx.is_exec and linux:
        for key, value in (linux.sysctl or {}).items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        rootfs.readonly_paths(linux.readonly_paths or [])
        rootfs.mask_paths(linux.masked_paths or [])
    if linux and linux.personality:
        _set_personality(linux.personality.domain)
    process.set_oom_score_adj(proc.oom_score_adj)
    process.apply_rlimits(proc.rlimits)
    process.reset_ignored_signals()  # before seccomp, which may forbid rt_sigaction
    if pty_slave >= 0:
        process.make_controlling_tty(pty_slave)
    elif not ctx.is_exec:
        os.setsid()
    if ctx.seccomp_filter is not None and not proc.no_new_privileges:
        ctx.seccomp_filter.load()
    capset = ctx.capabilities
    if capset is not None:
        caps.drop_bounding(capset.bounding)
    process.switch_user(proc)
    if capset is not None:
        caps.apply(capset)
    os.chdir(proc.cwd)
    os.umask(proc.user.umask if proc.user.umask is not None else 0o022)
    if proc.no_new_privileges:
        k.set_no_new_privs()
    env = process.with_home(proc.env or [], proc.user.uid)
    assert proc.args
    path = process.lookpath(proc.args[0], env)
    if ctx.placed_late:
        _await_cgroup(ctx)
        ctx.channel.expect("placed")
    ctx.channel.send("ready")
    ctx.channel.close()
    if ctx.fifo_fd >= 0:
        fifo = os.open(f"/proc/self/fd/{ctx.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fifo, b"0")
        os.close(fifo)
        os.close(ctx.fifo_fd)
        if spec.hooks and spec.hooks.start_container:
            state = dict(ctx.state, pid=os.getpid(), status="created")
            hooks.run(spec.hooks.start_container, state, "startContainer")
    process.set_exec_labels(proc)
    if ctx.seccomp_filter is not None and proc.no_new_privileges:
        ctx.seccomp_filter.load()
    try:
        process.execve(path, proc.args, env)
    except OSError as exc:
        os.write(2, f"exec {path}: {exc.strerror}\n".encode())
        os._exit(126)


def _await_cgroup(ctx: InitContext) -> None:
    """The container's cgroup directories exist once the runtime says "created" (with
    them, for the cgroup mount)."""
    if ctx.cgroup_pending:
        message = ctx.channel.expect("created")[0]
        ctx.cgroup_mounts = [(name, directory) for name, directory in message["mounts"]]
        ctx.cgroup_pending = False


def _prepare_rootfs(ctx: InitContext) -> None:
    spec = ctx.spec
    linux = spec.linux
    propagation = rootfs.PROPAGATION.get(
        (linux.rootfs_propagation if linux else None) or "rslave", k.MS_SLAVE | k.MS_REC)
    k.mount(None, "/", None, propagation)
    root = ctx.rootfs
    # pivot_root refuses a new root whose parent mount is shared, and a bind below a shared
    # parent would propagate out: make that parent private first (runc does the same).
    # After a recursive slave or private (the default: rslave) nothing here is shared, so
    # the mount table, hundreds of lines on a busy host, is read only for "(r)shared".
    if propagation & k.MS_SHARED:
        rootfs.make_parent_mount_private(root)
    k.mount(root, root, None, k.MS_BIND | k.MS_REC)
    for mount in spec.mounts or []:
        if mount.type == "cgroup":
            _await_cgroup(ctx)
        try:
            rootfs.mount_entry(root, mount, ctx.cgroup_mounts)
        except OSError as exc:
            raise OSError(exc.errno, f"mounting {mount.source or mount.type} on "
                          f"{mount.destination}: {exc.strerror}") from None
    if not rootfs.has_dev_mount(spec):
        devices = list(DEFAULT_DEVICES) + list((linux.devices if linux else None) or [])
        rootfs.create_devices(root, devices, bind=ctx.userns or "user" in ctx.join)
        rootfs.dev_symlinks(root)
    if spec.hooks and spec.hooks.start_container:
        hooks.load()  # they run after pivot_root
    if spec.hooks and spec.hooks.create_container:
        ctx.channel.send("hooks")
        ctx.channel.expect("hooks-done")
        hooks.run(spec.hooks.create_container, dict(ctx.state, pid=os.getpid()),
                  "createContainer")
    elif spec.hooks and (spec.hooks.prestart or spec.hooks.create_runtime):
        ctx.channel.send("hooks")
        ctx.channel.expect("hooks-done")
    if ctx.no_pivot:
        rootfs.move_into(root)
    else:
        rootfs.pivot_into(root)
    if linux and linux.rootfs_propagation:
        k.mount(None, "/", None, propagation)  # could not be shared while pivoting
    if spec.root and spec.root.readonly:
        rootfs.remount_bind("/", k.MS_RDONLY)


def _open_console(ctx: InitContext) -> int:
    """Create the pty inside the container and hand its master to the console socket."""
    import termios  # (only for a terminal: a shared library to load)

    master, slave = os.openpty()
    size = ctx.process.console_size
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width,
                                                           0, 0))
    if not ctx.is_exec:
        console = "/dev/console"
        if not os.path.exists(console):
            os.close(os.open(console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        k.mount(os.ttyname(slave), console, None, k.MS_BIND)
    if ctx.console_fd >= 0:
        sock = unixsock.from_fd(ctx.console_fd)
        unixsock.send_fds(sock, b"/dev/ptmx", [master])
        sock.close()
    else:
        ctx.channel.send("pty", fds=[master])
    os.close(master)
    return slave


def _loopback_up() -> None:
    """Bring up lo in a new network namespace, as runc's loopback strategy does."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    sock = unixsock.inet_dgram()
    try:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock.fileno(), siocgifflags, ifreq))[1]
        fcntl.ioctl(sock.fileno(), siocsifflags,
                    struct.pack("16sH14s", b"lo", flags | iff_up, b""))
    finally:
        sock.close()


_PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}


def _set_personality(domain: str) -> None:
    if domain not in _PERSONALITIES:
        raise ValueError(f"linux.personality.domain: unknown domain {domain!r}")
    k.personality(_PERSONALITIES[domain])
