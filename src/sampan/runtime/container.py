"""Container lifecycle in the runtime process: create, start, state, kill, exec, delete.

The runtime process is short-lived, as runc is: ``create`` forks the container's init,
waits until it is ready and blocked on exec.fifo, records the state and exits. Every later
command reads the state back and looks at the kernel (is the pid alive, is the cgroup
frozen) to tell the status; the state directory is never the only source of truth.
"""

from __future__ import annotations

import builtins
import errno
import os
import select
import time

from ..kernel import caps, unixsock
from ..kernel import signals as signal
from ..kernel import syscalls as k
from ..oci import SPEC_VERSION, jsonio
from ..oci.decode import DecodeError, decode
from ..oci.record import record, replace
from ..oci.spec import (
    ConfigError,
    Hooks,
    IDMapping,
    Process,
    Resources,
    Spec,
    parse_spec,
)
from . import affinity, process, warmup
from .channel import Channel, ChannelClosed, SetupError
from .context import InitContext, fork_init, fork_stage1, single_fork
from .devices import device_rules
from .state import (
    CREATED,
    CREATING,
    PAUSED,
    RUNNING,
    STOPPED,
    ContainerError,
    ContainerRecord,
    StateStore,
    oci_state,
    pid_start_time,
    status,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..cgroups import Cgroup
    from ..kernel.seccomp_bpf import BpfFilter

# Seccomp programs built before, by profile hash ('@' is never in a container ID).
SECCOMP_CACHE = "seccomp@cache"


@record
class Started:
    """A process the runtime forked and still has to do something with."""

    pid: int
    pty_master: int = -1


class Runtime:
    """The runtime's commands over one state root (runc's --root)."""

    def __init__(self, root: str) -> None:
        self.store = StateStore(root)
        # the cgroups this instance created: `run` looks its container's up again for the
        # OOM check and the delete, and finding the hierarchies means reading mountinfo
        self._created: dict[str, Cgroup] = {}
        # ... and the records: `run` starts the container it has just created
        self._records: dict[str, ContainerRecord] = {}

    # ---- queries -------------------------------------------------------------------

    def load(self, container_id: str) -> tuple[ContainerRecord, Spec]:
        record = self.store.load(container_id)
        spec = parse_spec(self.store.config(container_id))
        return record, spec

    def status(self, record: ContainerRecord) -> str:
        return status(self.store, record)

    def state(self, container_id: str) -> dict[str, object]:
        return oci_state(self.store, container_id)

    def list(self) -> list[dict[str, object]]:
        out = []
        for cid in self.store.ids():
            try:
                out.append(self.state(cid))
            except (ContainerError, OSError, ValueError):
                continue
        return out

    def _cgroup(self, record: ContainerRecord) -> Cgroup | None:
        created = self._created.get(record.id)
        if created is not None and created.paths == record.cgroup_paths:
            return created
        from ..cgroups import CgroupError, open_cgroup

        try:
            return open_cgroup(record.cgroups_path, record.id,
                               paths=record.cgroup_paths or None)
        except (OSError, CgroupError):
            return None

    # ---- create / start --------------------------------------------------------------

    def create(self, container_id: str, bundle: str, *, console_socket: str | None = None,
               pid_file: str | None = None, no_pivot: bool = False, preserve_fds: int = 0,
               detach_terminal: bool = True) -> Started:
        """Create the container; its init waits on exec.fifo for ``start``."""
        bundle = os.path.abspath(bundle)
        raw = _read_json(os.path.join(bundle, "config.json"))
        spec = parse_spec(raw)
        proc = spec.process
        if proc is None:
            raise ConfigError("process: required to create a container")
        assert spec.root is not None
        rootfs_path = os.path.normpath(os.path.join(bundle, spec.root.path))
        if not os.path.isdir(rootfs_path):
            raise ConfigError(f"root.path: {rootfs_path} is not a directory")
        if proc.terminal and detach_terminal and not console_socket:
            raise ConfigError("process.terminal: cannot allocate a tty when the runtime "
                              "detaches without --console-socket")
        if spec.namespace("mount") is None:
            raise ConfigError("linux.namespaces: a mount namespace is required")
        _check_security_labels(proc)
        process.check_rlimits(proc.rlimits)
        filt, capset = _compile_security(spec, proc, self.store.root)
        state_dir = self.store.reserve(container_id)
        record = ContainerRecord(
            id=container_id, bundle=bundle, rootfs=rootfs_path,
            created=_utc_now(),
            owner="root" if os.geteuid() == 0 else str(os.geteuid()),
            annotations=spec.annotations or {},
            cgroups_path=spec.linux.cgroups_path if spec.linux else None)
        made: list[Cgroup] = []
        started: Started | None = None
        try:
            fifo = os.path.join(state_dir, "exec.fifo")
            _make_exec_fifo(fifo, spec)
            fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
            resources = (spec.linux.resources if spec.linux else None) or Resources()

            def make_cgroup() -> tuple[Cgroup, Callable[[], None]]:
                """The cgroup, created, and the call that does what the init does not
                wait for (it needs the cgroup's directories only): the state's copy of
                the config and the record saved, the limits set before it is placed."""
                from ..cgroups import open_cgroup

                cgroup = open_cgroup(record.cgroups_path, container_id)
                made.append(cgroup)
                cgroup.create()
                record.cgroup_paths = dict(cgroup.paths)
                self._created[container_id] = cgroup

                def finish() -> None:
                    with open(os.path.join(state_dir, "config.json"), "w") as f:
                        f.write(jsonio.dumps(raw))
                    self.store.save(record)
                    cgroup.set(replace(resources, devices=device_rules(spec)))
                return cgroup, finish

            ctx = InitContext(spec=spec, process=proc, channel=None,  # type: ignore[arg-type]
                              rootfs=rootfs_path, fifo_fd=fifo_fd, no_pivot=no_pivot,
                              seccomp_filter=filt, capabilities=capset,
                              state=self._hook_state(record, CREATING))
            _namespaces_into(ctx, spec)
            # The first write to a cgroup v1 cgroup.procs waits for an RCU grace period
            # (10-15 ms here): made while stage 2 builds the rootfs, it costs nothing; so
            # do the cgroup's mkdirs and limits, and even loading the cgroups package.
            # Not with a user or cgroup namespace (their set-up needs the placement first)
            # nor with hooks (their messages would cross "created" and "placed").
            ctx.placed_late = not (ctx.userns or spec.hooks
                                   or ctx.new_namespaces & k.CLONE_NEWCGROUP)

            def placed(pid: int) -> None:
                """The record as `start` will find it, written while the init finishes its
                set-up; put in place once it is ready (runc's "created" state)."""
                record.pid, record.pid_start = pid, pid_start_time(pid)
                self.store.stage(record)

            started = self._spawn(ctx, None, console_socket, preserve_fds,
                                  lambda pid: self._before_pivot(record, spec, pid),
                                  make_cgroup, placed)
            os.close(fifo_fd)
            self.store.publish(container_id)
            self._records[container_id] = record
            if pid_file:
                _write_pid_file(pid_file, started.pid)
            return started
        except BaseException:
            if started is not None:
                _kill_and_reap(started.pid)
            for cgroup in made:
                cgroup.destroy()
            self._created.pop(container_id, None)
            self.store.remove(container_id)
            raise

    def _before_pivot(self, record: ContainerRecord, spec: Spec, pid: int) -> None:
        """prestart and createRuntime hooks: in the runtime's namespaces, before pivot."""
        if spec.hooks:
            from . import hooks

            state = self._hook_state(record, CREATING, pid)
            hooks.run((spec.hooks.prestart or []) + (spec.hooks.create_runtime or []), state,
                      "createRuntime")

    def _hook_state(self, record: ContainerRecord, status: str,
                    pid: int | None = None) -> dict[str, object]:
        state: dict[str, object] = {"ociVersion": SPEC_VERSION, "id": record.id,
                                    "status": status, "bundle": record.bundle,
                                    "annotations": record.annotations}
        if pid:
            state["pid"] = pid
        return state

    def _spawn(self, ctx: InitContext, cgroup: Cgroup | None, console_socket: str | None,
               preserve_fds: int, on_hooks: Callable[[int], None],
               make_cgroup: Callable[[], tuple[Cgroup, Callable[[], None]]] | None = None,
               on_placed: Callable[[int], None] | None = None) -> Started:
        """Fork the init (through stage 1 where needed), answer its requests, and return
        its pid once it is ready.

        The container's ``cgroup`` exists (exec), or ``make_cgroup`` creates it: before the
        fork when stage 1 is placed at once, else while the init sets up, sending
        "created" with its directories once made (the init waits for it before it mounts
        them at /sys/fs/cgroup), then finishing the rest.
        """
        if make_cgroup is not None and not ctx.placed_late:
            cgroup, finish = make_cgroup()
            finish()
            ctx.cgroup_mounts = cgroup.mount_sources()
        ctx.cgroup_pending = make_cgroup is not None and ctx.placed_late
        process.close_inherited_fds(2 + preserve_fds)
        if ctx.process.terminal:
            # loaded only for a terminal, and here: stage 2 uses it after pivot_root, where
            # the host's shared libraries are out of reach
            import termios  # noqa: F401
        console: unixsock.Socket | None = None
        if ctx.process.terminal and console_socket:
            try:
                console = unixsock.connect(console_socket)
            except OSError as exc:
                raise ContainerError(f"--console-socket {console_socket}: "
                                     f"{exc.strerror}") from None
            ctx.console_fd = console.fileno()
        initial, final = affinity.requested(ctx.process, ctx.is_exec)
        parent, child = Channel.pair()
        ctx.channel = child
        # stage 1 only when needed (context.single_fork); without it, the init is ours at once
        k.set_child_subreaper()
        stage1 = pid = 0
        if single_fork(ctx):
            pid = fork_init(ctx, parent)
        else:
            stage1 = fork_stage1(ctx, parent)
        child.close()
        if console is not None:
            console.close()
        let_go = False
        try:
            if initial is not None:
                affinity.apply(stage1 or pid, initial, "process.execCPUAffinity.initial")
            if stage1:
                if not ctx.is_exec and not ctx.placed_late:
                    assert cgroup is not None
                    cgroup.apply(stage1)
                parent.send("go")
                let_go = True
                if not ctx.is_exec and not ctx.placed_late:
                    warmup.kill()  # (its job done: see warmup.py)
            if make_cgroup is not None and ctx.cgroup_pending:
                cgroup, finish = make_cgroup()
                parent.send("created", mounts=cgroup.mount_sources())
                finish()
            if ctx.userns:
                parent.expect("userns")
                _write_id_maps(stage1, ctx.spec)
                parent.send("userns-done")
            if stage1:
                pid = parent.expect("pid")[0]["pid"]
                os.waitpid(stage1, 0)
            if ctx.is_exec or ctx.placed_late:
                from ..cgroups import CgroupError

                assert cgroup is not None
                try:
                    cgroup.apply(pid)
                    if final is not None:
                        affinity.apply(pid, final, "process.execCPUAffinity.final")
                    parent.send("placed")
                    warmup.kill()
                except (OSError, CgroupError):
                    _raise_reported(parent)
                    raise
            elif final is not None:  # (born in the cgroup: stage 1 was placed)
                affinity.apply(pid, final, "process.execCPUAffinity.final")
            if on_placed is not None:
                on_placed(pid)
            started = Started(pid)
            while True:
                message, fds = parent.expect("hooks", "pty", "ready")
                if message["type"] == "hooks":
                    on_hooks(pid)
                    parent.send("hooks-done")
                elif message["type"] == "pty":
                    started.pty_master = fds[0]
                else:
                    return started
        except ChannelClosed:
            raise SetupError("the container's init exited during set-up") from None
        except BaseException:
            if not pid and let_go and ctx.cgroup_pending:
                pid = _reported_pid(parent)  # stage 1 was let go: it forks stage 2 anyway
            parent.close()  # a stage still waiting for us gives up
            if stage1:
                _reap(stage1)
            if pid:
                _kill_and_reap(pid)  # ours once stage 1 is gone (we are its subreaper)
            raise
        finally:
            parent.close()

    def _hooks(self, container_id: str) -> Hooks | None:
        """Only the hooks of the stored config: start and delete need nothing else, and
        decoding the whole spec is a noticeable part of a container's start-up."""
        data = self.store.config(container_id).get("hooks")
        if data is None:
            return None
        try:
            return decode(Hooks, data, "hooks")
        except DecodeError as exc:
            raise ConfigError(str(exc)) from None

    def start(self, container_id: str) -> None:
        record = self._records.pop(container_id, None)
        if record is None:
            record = self.store.load(container_id)
        status = self.status(record)
        if status != CREATED:
            raise ContainerError(f"cannot start a container that has {status}"
                                 if status == STOPPED else
                                 f"cannot start an already {status} container")
        fifo = os.path.join(self.store.dir(container_id), "exec.fifo")
        _await_fifo(fifo, record.pid)
        try:
            os.unlink(fifo)
            spec_hooks = self._hooks(container_id)
        except FileNotFoundError:  # it ran, exited and was deleted already (by a daemon)
            return
        if spec_hooks and spec_hooks.poststart:
            from . import hooks

            try:
                hooks.run(spec_hooks.poststart, self._hook_state(record, RUNNING, record.pid),
                          "poststart")
            except hooks.HookError as exc:
                print(f"warning: {exc}", file=__import__("sys").stderr)

    # ---- signals, pause, delete --------------------------------------------------------

    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> None:
        record = self.store.load(container_id)
        status = self.status(record)
        if status == STOPPED and not all_processes:
            raise ContainerError("container not running")
        if all_processes:
            cgroup = self._cgroup(record)
            if cgroup is not None:
                if status == PAUSED:
                    cgroup.kill(sig)
                    cgroup.thaw()
                else:
                    cgroup.kill(sig)
                return
        _signal(record, sig)

    def pause(self, container_id: str) -> None:
        record = self.store.load(container_id)
        status = self.status(record)
        if status != RUNNING:
            raise ContainerError(f"container not running: {status}")
        self._require_cgroup(record).freeze()

    def resume(self, container_id: str) -> None:
        record = self.store.load(container_id)
        status = self.status(record)
        if status != PAUSED:
            raise ContainerError(f"container not paused: {status}")
        self._require_cgroup(record).thaw()

    def _require_cgroup(self, record: ContainerRecord) -> Cgroup:
        cgroup = self._cgroup(record)
        if cgroup is None:
            raise ContainerError(f"container {record.id} has no cgroup")
        return cgroup

    def pids(self, container_id: str) -> builtins.list[int]:
        record = self.store.load(container_id)
        return self._require_cgroup(record).pids()

    def update(self, container_id: str, resources: object) -> None:
        record, _spec = self.load(container_id)
        if self.status(record) == STOPPED:
            raise ContainerError("cannot update a stopped container")
        from ..oci.decode import DecodeError, decode
        from ..oci.spec import Resources

        try:
            res = decode(Resources, resources, "linux.resources")
        except DecodeError as exc:
            raise ConfigError(str(exc)) from None
        self._require_cgroup(record).set(res)
        # Keep config.json in step so that later reads see what is in force.
        data = self.store.config(container_id)
        merged = _merge(data.setdefault("linux", {}).setdefault("resources", {}),
                        resources if isinstance(resources, dict) else {})
        data["linux"]["resources"] = merged
        path = os.path.join(self.store.dir(container_id), "config.json")
        with open(path + ".tmp", "w") as f:
            f.write(jsonio.dumps(data))
        os.replace(path + ".tmp", path)

    def delete(self, container_id: str, force: bool = False) -> None:
        record = self.store.load(container_id)
        status = self.status(record)
        if status in (RUNNING, PAUSED) and not force:
            raise ContainerError(f"cannot delete container {container_id} that is not "
                                 f"stopped: {status}")
        cgroup = self._cgroup(record)
        if status != STOPPED:
            if cgroup is not None:
                cgroup.kill(signal.SIGKILL)
                if status == PAUSED:
                    cgroup.thaw()
            try:
                _signal(record, signal.SIGKILL)
            except ContainerError:
                pass
            _wait_gone(record)
        if cgroup is not None:
            cgroup.destroy()
        self._created.pop(container_id, None)
        try:
            spec_hooks = self._hooks(container_id)
        except (OSError, ValueError):
            spec_hooks = None
        self.store.remove(container_id)
        if spec_hooks and spec_hooks.poststop:
            from . import hooks

            try:
                hooks.run(spec_hooks.poststop, self._hook_state(record, STOPPED), "poststop")
            except hooks.HookError as exc:
                print(f"warning: {exc}", file=__import__("sys").stderr)

    def oom_killed(self, container_id: str) -> bool:
        record = self.store.load(container_id)
        cgroup = self._cgroup(record)
        return cgroup is not None and cgroup.oom_kills() > 0

    # ---- exec -----------------------------------------------------------------------

    def exec(self, container_id: str, proc: Process, *, console_socket: str | None = None,
             pid_file: str | None = None, detach: bool = False,
             preserve_fds: int = 0) -> Started:
        record, spec = self.load(container_id)
        status = self.status(record)
        if status not in (CREATED, RUNNING):
            raise ContainerError(f"cannot exec in a {status} container")
        if proc.terminal and detach and not console_socket:
            raise ConfigError("process.terminal: cannot allocate a tty when the runtime "
                              "detaches without --console-socket")
        _check_security_labels(proc)
        process.check_rlimits(proc.rlimits)
        filt, capset = _compile_security(spec, proc, self.store.root)
        ctx = InitContext(spec=spec, process=proc, channel=None,  # type: ignore[arg-type]
                          seccomp_filter=filt, capabilities=capset, is_exec=True)
        own = {kind: _ns_inode(f"/proc/self/ns/{name}")
               for kind, name in k.NAMESPACE_FILES.items()}
        for kind, name in k.NAMESPACE_FILES.items():
            path = f"/proc/{record.pid}/ns/{name}"
            target = _ns_inode(path)
            if target is not None and target != own.get(kind):
                ctx.join[kind] = path
        cgroup = self._require_cgroup(record)
        started = self._spawn(ctx, cgroup, console_socket, preserve_fds, lambda pid: None)
        if pid_file:
            _write_pid_file(pid_file, started.pid)
        return started


def _utc_now() -> str:
    """RFC 3339 with microseconds, as runc writes ``created`` (datetime costs an import)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def _ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _raise_reported(parent: Channel) -> None:
    """Raise the error stage 2 sent before it exited, if it did: a placement that failed
    because stage 2 is gone is not the error to tell (an exec that was not found is)."""
    if select.select([parent], [], [], 0)[0]:
        parent.expect("ready")


def _reported_pid(parent: Channel) -> int:
    """Stage 2's pid as stage 1 reports it, or 0 when stage 1 failed or died instead."""
    try:
        return int(parent.expect("pid")[0]["pid"])
    except (ChannelClosed, SetupError, OSError):
        return 0


def _namespaces_into(ctx: InitContext, spec: Spec) -> None:
    for ns in (spec.linux.namespaces if spec.linux else None) or []:
        if ns.path:
            ctx.join[ns.type] = ns.path
        elif ns.type == "user":
            ctx.userns = True
        else:
            ctx.new_namespaces |= k.NAMESPACE_FLAGS[ns.type]


def _compile_security(spec: Spec, proc: Process, root: str,
                      ) -> tuple[BpfFilter | None, caps.CapabilitySet | None]:
    linux = spec.linux
    filt = None
    if linux and linux.seccomp:
        from ..kernel.seccomp_bpf import compile_cached

        filt = compile_cached(linux.seccomp, os.path.join(root, SECCOMP_CACHE))
    capset = caps.CapabilitySet.from_spec(proc.capabilities)
    return filt, capset


def _check_security_labels(proc: Process) -> None:
    if proc.apparmor_profile and proc.apparmor_profile != "unconfined":
        try:
            with open("/sys/module/apparmor/parameters/enabled") as f:
                enabled = f.read().strip() == "Y"
        except OSError:
            enabled = False
        if not enabled:
            raise ConfigError(f"process.apparmorProfile: {proc.apparmor_profile!r} requested "
                              "but AppArmor is not enabled on this host")
    if proc.selinux_label and not os.path.exists("/sys/fs/selinux/enforce"):
        raise ConfigError(f"process.selinuxLabel: {proc.selinux_label!r} requested but "
                          "SELinux is not enabled on this host")


def _make_exec_fifo(path: str, spec: Spec) -> None:
    """exec.fifo, writable by the container's init whatever user it becomes (runc's mode
    and owner: 0622, the container's root)."""
    old = os.umask(0)
    try:
        os.mkfifo(path, 0o622)
    finally:
        os.umask(old)
    linux = spec.linux
    if linux and linux.uid_mappings and linux.gid_mappings:
        os.chown(path, _host_id(linux.uid_mappings), _host_id(linux.gid_mappings))


def _host_id(mappings: builtins.list[IDMapping]) -> int:
    return next((m.host_id for m in mappings if m.container_id == 0), 0)


def _write_id_maps(pid: int, spec: Spec) -> None:
    linux = spec.linux
    assert linux is not None
    for name, field, mappings in (("uid_map", "uidMappings", linux.uid_mappings),
                                  ("gid_map", "gidMappings", linux.gid_mappings)):
        if not mappings:
            raise ConfigError(f"linux.{field}: a new user namespace needs mappings")
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)


def _signal(record: ContainerRecord, sig: int) -> None:
    if pid_start_time(record.pid) != record.pid_start:
        raise ContainerError("container not running")
    try:
        fd = k.pidfd_open(record.pid)
    except OSError as exc:
        # EINVAL: the pid still exists but its process is being released (it exited).
        if exc.errno in (errno.ESRCH, errno.EINVAL):
            raise ContainerError("container not running") from None
        raise
    try:
        k.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        raise ContainerError("container not running") from None
    finally:
        os.close(fd)


def _wait_gone(record: ContainerRecord, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pid_start_time(record.pid) == record.pid_start:
        try:
            os.waitpid(record.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            raise ContainerError(f"container {record.id} did not stop after SIGKILL")
        time.sleep(0.005)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _await_fifo(fifo: str, pid: int) -> None:
    """Open exec.fifo for reading without hanging if the init died meanwhile."""
    import select

    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ContainerError("container is not in created state") from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100):
                data = os.read(fd, 1)
                if data:
                    return
            if pid_start_time(pid) == 0:
                raise ContainerError("the container's init exited before start")
    finally:
        os.close(fd)


def _write_pid_file(path: str, pid: int) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _read_json(path: str) -> object:
    try:
        with open(path, "rb") as f:
            return jsonio.loads(f.read())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (is --bundle right?)") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from None


def _merge(base: dict[str, object], update: dict[str, object]) -> dict[str, object]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)  # type: ignore[arg-type]
        else:
            out[key] = value
    return out
