"""The classic builder: a Dockerfile's stages run step by step into an image.

Each step starts from its parent state and makes a new one: config instructions change the
config (an ``empty_layer`` history entry); WORKDIR, COPY and ADD write into a snapshot of
the parent mounted on the host, committed as a layer; RUN runs as a container of the engine
(same runtime, same isolation) whose changes are committed as a layer. Before doing a step
the cache is asked for the state it made last time (see ``cache``). The output is what
docker's classic builder writes (``Step 2/7 : RUN …``, `` ---> Using cache``).

A failing step stops the build: its container and snapshots are removed, and no image is
registered (the steps done before it stay in the cache, as docker keeps them).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..engine import Engine, EngineError
from ..engine.logs import JsonTail
from ..images.instructions import ChangeError, expand_word, expand_words, split_words
from ..images.store import (
    Image,
    docker_container_config,
    image_reference,
    rfc3339,
)
from ..oci.image import Platform, host_platform
from ..snapshots import mount_all, unmount_all
from . import commands, copying
from .cache import BuildCache, step_key
from .commands import DEFAULT_SHELL, StepEnv
from .context import Context
from .dockerfile import Dockerfile, Instruction, ParseError, parse
from .errors import BuildError
from .layers import (
    State,
    commit_snapshot,
    empty_state,
    from_image,
    materialize,
    register,
    release,
)
from .pulling import RegistryAccess, base_image, wanted_platform
from .stages import Plan, Stage, find_stage, meta_env, plan

Emit = Callable[[dict[str, Any]], Awaitable[None]]
# Build args every Dockerfile may use without declaring them; never written to the history.
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})
SPECIAL_ARGS = frozenset({"SOURCE_DATE_EPOCH"})


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    quiet: bool = False
    network_mode: str = ""
    platform: str | None = None
    # Intermediate containers: removed after a step that worked (``rm``), or after every
    # step, also one that failed (``forcerm``); else kept, as docker keeps them.
    remove: bool = True
    force_remove: bool = False
    registry: RegistryAccess = field(default_factory=RegistryAccess)


@dataclass
class _Run:
    """One stage being built."""

    stage: Stage
    state: State
    args: dict[str, str | None] = field(default_factory=dict)  # declared ARGs
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False
    step: int = 1  # the number of its next step in the output


_STAGE: contextvars.ContextVar[int | None] = contextvars.ContextVar("stage", default=None)


class _Ordered:
    """Stages' output in file order: the earliest unfinished stage streams, later ones are
    held until it is done."""

    def __init__(self, emit: Emit, order: list[int]) -> None:
        self._emit = emit
        self._order = order
        self._held: dict[int, list[dict[str, Any]]] = {i: [] for i in order}
        self._done: set[int] = set()
        self._at = 0
        self._pumping = False

    async def send(self, stage: int, message: dict[str, Any]) -> None:
        self._held[stage].append(message)
        await self._pump()

    async def finish(self, stage: int) -> None:
        self._done.add(stage)
        await self._pump()

    async def flush_all(self) -> None:
        """After a failure: what every stage said, in order (the error comes last)."""
        self._done.update(self._order)
        await self._pump()

    async def _pump(self) -> None:
        """Send what the current stage holds, moving on past finished stages; one task
        pumps at a time (the others' messages wait in the queues it drains)."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._at < len(self._order):
                current = self._order[self._at]
                if self._held[current]:
                    await self._emit(self._held[current].pop(0))
                elif current in self._done:
                    self._at += 1
                else:
                    break
        finally:
            self._pumping = False


class Builder:
    def __init__(self, engine: Engine, cache: BuildCache, context: Context,
                 options: BuildOptions, emit: Emit) -> None:
        self.engine = engine
        self.store = engine.images
        self.cache = cache
        self.context = context
        self.options = options
        self._emit = emit
        self.results: dict[int, State] = {}
        self.used_args: set[str] = set()
        self.total = 0
        self.first_step: dict[int, int] = {}
        self.output = _Ordered(emit, [])
        # images materialized for RUN containers: (containers using it, made by the build)
        self._held: dict[str, tuple[int, bool]] = {}
        self._hold_lock = asyncio.Lock()
        self.meta: dict[str, str] = {}
        self.escape = "\\"  # the Dockerfile's (``# escape=``)
        epoch = options.build_args.get("SOURCE_DATE_EPOCH")
        try:
            self.epoch = int(epoch) if epoch else None
        except ValueError:
            raise BuildError(f"SOURCE_DATE_EPOCH: not a number: {epoch!r}") from None

    # Output -------------------------------------------------------------------------------

    async def say(self, text: str) -> None:
        if not self.options.quiet:
            stage = _STAGE.get()
            if stage is None:
                await self._emit({"stream": text})
            else:
                await self.output.send(stage, {"stream": text})

    # The build ----------------------------------------------------------------------------

    async def build(self) -> str:
        try:
            dockerfile = parse(self.context.dockerfile)
        except ParseError as exc:
            raise BuildError(str(exc)) from None
        self.escape = dockerfile.escape
        self._add_labels(dockerfile)
        the_plan = plan(dockerfile, self.options.build_args, self.options.target)
        # An ARG without a default inside a stage takes the meta arg's value.
        self.meta = meta_env(the_plan.meta_args, self.options.build_args, self.escape)
        self.used_args.update(w.partition("=")[0] for ins in the_plan.meta_args
                              for w in split_words(ins.args, self.escape))
        stages = the_plan.needed()
        self.total = sum(1 + len(s.instructions) for s in stages)
        await self._stages(the_plan, stages)
        final = self.results[the_plan.target]
        unused = sorted(k for k in self.options.build_args
                        if k not in self.used_args and k not in PROXY_ARGS | SPECIAL_ARGS)
        if unused:
            await self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                           "consumed\n")
        try:
            tags = [image_reference(t) for t in self.options.tags]
        except ValueError as exc:
            raise BuildError(str(exc)) from None
        image = await asyncio.to_thread(register, self.store, final, tags)
        await self._emit({"aux": {"ID": image.id}})
        if self.options.quiet:
            await self._emit({"stream": image.id + "\n"})
        else:
            await self.say(f"Successfully built {_short(image.id)}\n")
            for tag in self.options.tags:
                await self.say(f"Successfully tagged {image_reference(tag).familiar()}\n")
        for ref in tags:
            self.engine.image_event("tag", str(ref))
        return image.id

    def _add_labels(self, dockerfile: Dockerfile) -> None:
        """--label becomes a LABEL step at the end of the target stage, as in docker."""
        if not self.options.labels:
            return
        text = " ".join(f"{self._quoted(k)}={self._quoted(v)}"
                        for k, v in sorted(self.options.labels.items()))
        label = Instruction(keyword="label", args=text, line=0, original="LABEL " + text)
        stages = [i for i, ins in enumerate(dockerfile.instructions) if ins.keyword == "from"]
        if self.options.target:
            for n, at in enumerate(stages):
                words = dockerfile.instructions[at].args.split()
                if len(words) == 3 and words[2].lower() == self.options.target.lower():
                    end = stages[n + 1] if n + 1 < len(stages) else \
                        len(dockerfile.instructions)
                    dockerfile.instructions.insert(end, label)
                    return
        dockerfile.instructions.append(label)

    def _quoted(self, text: str) -> str:
        """``text`` double-quoted for the shell lexer, with the Dockerfile's escape."""
        esc = self.escape
        return '"' + "".join(esc + c if c in ('"', "$", esc) else c for c in text) + '"'

    async def _stages(self, the_plan: Plan, stages: list[Stage]) -> None:
        """Build ``stages``, each as soon as the stages it needs are built: independent
        stages run in parallel. Their output comes out in file order, as if one ran after
        the other (a stage's output waits while an earlier one is still building)."""
        self.output = _Ordered(self._emit, [s.index for s in stages])
        first = 1
        for stage in stages:
            self.first_step[stage.index] = first
            first += 1 + len(stage.instructions)
        done: dict[int, asyncio.Future[State]] = {
            s.index: asyncio.get_running_loop().create_future() for s in stages}

        async def one(stage: Stage) -> None:
            _STAGE.set(stage.index)
            for dep in stage.deps:
                await done[dep]
            state = await self._stage(the_plan, stage)
            self.results[stage.index] = state
            done[stage.index].set_result(state)
            await self.output.finish(stage.index)

        tasks = [asyncio.create_task(one(s)) for s in stages]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for future in done.values():
                if not future.done():
                    future.cancel()
            await self.output.flush_all()
            raise

    async def _header(self, run: _Run, ins: Instruction) -> None:
        await self.say(f"Step {run.step}/{self.total} : {ins.original}\n")
        run.step += 1

    async def _stage(self, the_plan: Plan, stage: Stage) -> State:
        run = _Run(stage=stage, state=empty_state("", ""), step=self.first_step[stage.index])
        await self._header(run, stage.from_ins)
        state = await self._base(the_plan, stage)
        run.state = state
        shell = state.config.get("Shell")
        if shell:
            run.shell = list(shell)
        await self.say(f" ---> {_short(state.id)}\n")
        triggers = list(state.config.get("OnBuild") or [])
        if triggers:
            run.state = state.child()
            run.state.config["OnBuild"] = None
            await self.say(f"# Executing {len(triggers)} build trigger"
                           f"{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                try:
                    trigger = parse(text).instructions[0]
                except (ParseError, IndexError) as exc:
                    raise BuildError(f"invalid ONBUILD trigger {text!r}: {exc}") from None
                await self._instruction(the_plan, run, trigger)
        for ins in stage.instructions:
            await self._header(run, ins)
            await self._instruction(the_plan, run, ins)
            await self.say(f" ---> {_short(run.state.id)}\n")
        return run.state

    async def _base(self, the_plan: Plan, stage: Stage) -> State:
        below = find_stage(the_plan.stages, stage.base, stage.index)
        if below is not None:
            return self.results[below.index]
        what = f"Dockerfile line {stage.from_ins.line}: FROM --platform" if stage.platform \
            else "platform"
        platform = wanted_platform(stage.platform or self.options.platform, what)
        if stage.base == "scratch":
            target = platform or host_platform()
            return empty_state(target.architecture, target.os, target.variant)
        return from_image(await self._image(stage.base, platform))

    async def _image(self, reference: str, platform: Platform | None) -> Image:
        """A FROM or COPY --from image: local, else pulled (see ``pulling``)."""
        return await base_image(self.store, reference, platform, pull=self.options.pull,
                                access=self.options.registry, send=self._progress)

    async def _progress(self, message: dict[str, Any]) -> None:
        """A pull's progress message, in the stage's place in the output."""
        if self.options.quiet:
            return
        stage = _STAGE.get()
        if stage is None:
            await self._emit(message)
        else:
            await self.output.send(stage, message)

    # Steps --------------------------------------------------------------------------------

    def _env(self, run: _Run) -> dict[str, str]:
        """The expansion environment: Env, plus build args in use that Env does not set."""
        env = {k: v for k, _, v in (e.partition("=") for e in run.state.config.get("Env") or [])}
        for name, value in run.args.items():
            if value is not None and name not in env:
                env[name] = value
        return env

    def _args_in_use(self, run: _Run) -> list[str]:
        """``K=V`` of the declared build args with a value that Env does not override."""
        env_keys = {e.partition("=")[0] for e in run.state.config.get("Env") or []}
        return sorted(f"{k}={v}" for k, v in run.args.items()
                      if v is not None and k not in env_keys)

    async def _instruction(self, the_plan: Plan, run: _Run, ins: Instruction) -> None:
        keyword = ins.keyword
        if keyword == "arg":
            await self._arg(run, ins)
        elif keyword in commands.HANDLERS:
            await self._config(run, ins)
        elif keyword == "workdir":
            await self._workdir(run, ins)
        elif keyword in ("copy", "add"):
            await self._copy(the_plan, run, ins)
        elif keyword == "run":
            await self._run(run, ins)
        else:
            raise BuildError(f"Dockerfile line {ins.line}: {keyword.upper()} is not allowed "
                             "here")

    def _step_env(self, run: _Run) -> StepEnv:
        child = run.state.child()
        return StepEnv(config=child.config, document=child.document, env=self._env(run),
                       shell=list(run.shell), cmd_set=run.cmd_set, escape=self.escape)

    def _finish(self, parent: State, child: State, created_by: str, *, empty: bool,
                cmd: list[str], container: str = "") -> State:
        """Record a step in ``child``: the history entry, the parent, the times."""
        created = rfc3339(self.epoch if self.epoch is not None else time.time())
        doc = child.document
        config = docker_container_config(doc.get("config"))
        config["Image"] = parent.id
        doc["config"] = config
        doc["container_config"] = {**config, "Cmd": cmd}
        doc["container"] = container if self.epoch is None else ""  # reproducible
        doc["created"] = created
        doc["docker_version"] = f"sampan-{__version__}"
        doc["rootfs"] = {"type": "layers", "diff_ids": [la.diff_id for la in child.layers]}
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        doc["history"] = [*(doc.get("history") or []), entry]
        return child

    def _cached(self, key: str) -> State | None:
        return None if self.options.no_cache else self.cache.get(key)

    async def _use_cache(self, run: _Run, key: str) -> bool:
        found = self._cached(key)
        if found is None:
            return False
        run.state = found
        await self.say(" ---> Using cache\n")
        return True

    @staticmethod
    def _nop(run: _Run, text: str, spaces: int = 2) -> list[str]:
        """The comment command docker records for a step that runs nothing."""
        if spaces == 2:
            return [*run.shell, "#(nop) ", text]
        return [*run.shell, "#(nop) " + text]

    async def _arg(self, run: _Run, ins: Instruction) -> None:
        env = self._env(run)
        recorded = []  # the history has each default expanded, as docker records it
        for word in split_words(ins.args, self.escape):
            name, sep, default = word.partition("=")
            if not name:
                raise BuildError(f"Dockerfile line {ins.line}: ARG requires a name")
            self.used_args.add(name)
            if sep:
                try:
                    default = expand_word(default, env, self.escape)
                except ChangeError as exc:
                    raise BuildError(f"Dockerfile line {ins.line}: {exc}") from None
            recorded.append(f"{name}={default}" if sep else name)
            given = self.options.build_args.get(name)
            if given is not None:
                run.args[name] = given
            elif sep:
                run.args[name] = default
            else:
                run.args[name] = self.meta.get(name)
        await self._empty_step(run, self._nop(run, "ARG " + " ".join(recorded)))

    async def _empty_step(self, run: _Run, cmd: list[str], child: State | None = None) -> None:
        created_by = " ".join(cmd)
        key = step_key(run.state.id, created_by)
        if await self._use_cache(run, key):
            return
        parent = run.state
        run.state = self._finish(parent, child or parent.child(), created_by, empty=True,
                                 cmd=cmd)
        self.cache.put(key, run.state)

    async def _config(self, run: _Run, ins: Instruction) -> None:
        step = self._step_env(run)
        try:
            text = commands.apply(step, ins)
        except BuildError as exc:
            raise BuildError(f"Dockerfile line {ins.line}: {exc}") from None
        run.cmd_set = step.cmd_set
        run.shell = step.shell
        await self._empty_step(run, self._nop(run, text),
                               State(step.document, list(run.state.layers)))

    # Layer steps --------------------------------------------------------------------------

    async def _layer_step(self, run: _Run, cmd: list[str], content: str,
                          work: Callable[[str], None], config: StepEnv | None = None) -> None:
        """A step that writes files: ``work`` gets the parent's root mounted read-write."""
        created_by = " ".join(cmd)
        key = step_key(run.state.id, created_by, content)
        if await self._use_cache(run, key):
            return
        parent = run.state
        layer = await asyncio.to_thread(self._write_layer, parent, work)
        child = parent.child() if config is None else State(config.document,
                                                           list(parent.layers))
        if layer is not None:
            child.layers.append(layer)
        run.state = self._finish(parent, child, created_by, empty=layer is None, cmd=cmd)
        self.cache.put(key, run.state)

    def _write_layer(self, parent: State, work: Callable[[str], None]) -> Any:
        snaps = self.store.snapshots
        key = f"build-{secrets.token_hex(6)}"
        target = tempfile.mkdtemp(prefix="build-root-", dir=self.store.root)
        try:
            mounts = snaps.prepare(key, parent.top)
            try:
                mount_all(mounts, target)
                try:
                    work(target)
                finally:
                    unmount_all(target)
                return commit_snapshot(self.store, key, parent, epoch=self.epoch)
            except BaseException:
                if snaps.exists(key):
                    snaps.remove(key)
                raise
        finally:
            if not os.path.ismount(target):
                shutil.rmtree(target, ignore_errors=True)

    async def _workdir(self, run: _Run, ins: Instruction) -> None:
        step = self._step_env(run)
        try:
            text = commands.workdir(step, ins)
        except ChangeError as exc:
            raise BuildError(f"Dockerfile line {ins.line}: {exc}") from None
        path = step.config["WorkingDir"]

        def make(root: str) -> None:
            copying.make_dirs(root, path)

        await self._layer_step(run, self._nop(run, text, spaces=1), "", make, step)

    async def _copy(self, the_plan: Plan, run: _Run, ins: Instruction) -> None:
        env = self._env(run)
        extra = set(ins.flags) - {"from", "chown", "chmod"}
        if extra - {"link"}:
            raise BuildError(f"Dockerfile line {ins.line}: unknown flag: "
                             f"{sorted(extra)[0]}")
        if ins.keyword == "add" and "from" in ins.flags:
            raise BuildError(f"Dockerfile line {ins.line}: ADD does not take --from")
        try:
            esc = self.escape
            if ins.json_args is not None:
                words = [expand_word(w, env, esc) for w in ins.json_args]
            else:
                words = expand_words(ins.args, env, esc)
            chown = expand_word(ins.flags["chown"], env, esc) if ins.flags.get("chown") \
                else None
        except ChangeError as exc:
            raise BuildError(f"Dockerfile line {ins.line}: {exc}") from None
        chmod = None
        if ins.flags.get("chmod"):
            try:
                chmod = int(ins.flags["chmod"], 8)
            except ValueError:
                raise BuildError(f"Dockerfile line {ins.line}: invalid chmod "
                                 f"{ins.flags['chmod']!r}") from None
        heredocs = {h.name: h for h in ins.heredocs}
        specs = [w for w in words if not (w.startswith("<<") and
                                          w.lstrip("<-").strip("'\"") in heredocs)]
        if ins.heredocs:
            specs = [f"<<{h.name}" for h in ins.heredocs] + specs
        if len(specs) < 2:
            raise BuildError(f"Dockerfile line {ins.line}: {ins.keyword.upper()} requires at "
                             "least two arguments")
        dest = specs[-1]
        with _Sources() as sources:
            found, what = await self._sources(the_plan, run, ins, specs[:-1], heredocs, env,
                                              sources)
            content = await asyncio.to_thread(copying.content_hash, found)
            kind = "dir" if len(found) == 1 and os.path.isdir(found[0].path) else \
                "file" if len(found) == 1 else "multi"
            note = f"{ins.keyword.upper()} {kind}:{content} in {dest} "
            if chown or chmod is not None:
                note += f"--chown={chown or ''} --chmod={ins.flags.get('chmod', '')}"
            workdir = run.state.config.get("WorkingDir") or "/"
            extract = ins.keyword == "add" and what == "context"

            def work(root: str) -> None:
                owner = copying.resolve_owner(root, chown)
                copying.copy_sources(root, found, dest, workdir, owner=owner, chmod=chmod,
                                     extract=extract, keep_owner=what == "stage")

            await self._layer_step(run, self._nop(run, note, spaces=1), content, work)

    async def _sources(self, the_plan: Plan, run: _Run, ins: Instruction, specs: list[str],
                       heredocs: dict[str, Any], env: dict[str, str],
                       sources: _Sources) -> tuple[list[copying.Source], str]:
        origin = ins.flags.get("from")
        if origin:
            below = find_stage(the_plan.stages, origin, run.stage.index)
            state = self.results.get(below.index) if below is not None else None
            if state is None:
                try:
                    image = await self._image(origin, wanted_platform(self.options.platform))
                except BuildError as exc:
                    raise BuildError(f"Dockerfile line {ins.line}: COPY --from={origin}: no "
                                     f"stage or image named {origin!r} ({exc})") from None
                state = from_image(image)
            root = await asyncio.to_thread(sources.view, self.store, state)
            found = await asyncio.to_thread(copying.find_sources, root, specs,
                                            f"stage {origin}")
            return found, "stage"
        local: list[str] = []
        found_all: list[copying.Source] = []
        for spec in specs:
            if spec.startswith("<<"):
                doc = heredocs[spec[2:]]
                text = expand_vars(doc.content, env) if doc.expand else doc.content
                found_all.append(sources.heredoc(doc.name, text))
            elif spec.startswith(("http://", "https://")) and ins.keyword == "add":
                found_all.append(await asyncio.to_thread(sources.download, spec))
            else:
                local.append(spec)
        if local:
            found_all.extend(await asyncio.to_thread(copying.find_sources,
                                                     self.context.root, local))
        return found_all, "context"

    # RUN ----------------------------------------------------------------------------------

    async def _run(self, run: _Run, ins: Instruction) -> None:
        if ins.flags:
            raise BuildError(f"Dockerfile line {ins.line}: RUN --{next(iter(ins.flags))} "
                             "needs BuildKit; the classic builder does not take it")
        step = self._step_env(run)
        if len(ins.heredocs) == 1 and re.fullmatch(r"<<-?(['\"]?)\w+\1", ins.args.strip()):
            # ``RUN <<EOF``: the heredoc is the script (buildkit's rule)
            cmd = [*run.shell, ins.heredocs[0].content]
        elif ins.heredocs:
            # ``RUN cmd <<EOF``: the shell reads the heredocs itself, as written
            script = ins.args + "\n" + "".join(
                f"{h.content}{h.name}\n" for h in ins.heredocs)
            cmd = [*run.shell, script.rstrip("\n")]
        else:
            cmd = commands.command_args(step, ins)
        in_use = self._args_in_use(run)
        recorded = [a for a in in_use if a.partition("=")[0] not in PROXY_ARGS
                    or a.partition("=")[0] in run.args]
        created_by = " ".join(cmd)
        if recorded:
            created_by = f"|{len(recorded)} {' '.join(recorded)} {created_by}"
        key = step_key(run.state.id, created_by)
        if await self._use_cache(run, key):
            return
        parent = run.state
        env = list(parent.config.get("Env") or []) + \
            [a for a in in_use if a.partition("=")[0] not in
             {e.partition("=")[0] for e in parent.config.get("Env") or []}]
        proxies = [f"{k}={v}" for k, v in self.options.build_args.items()
                   if k in PROXY_ARGS and v is not None and k not in run.args]
        layer, container = await self._container(parent, cmd, env + proxies)
        child = parent.child()
        if layer is not None:
            child.layers.append(layer)
        run.state = self._finish(parent, child, created_by, empty=layer is None, cmd=cmd,
                                 container=container)
        self.cache.put(key, run.state)

    async def _container(self, parent: State, cmd: list[str], env: list[str]) -> Any:
        containers = self.engine.containers
        image_id = await self._hold(parent)
        cid = ""
        failed = True
        try:
            body = {"Image": image_id, "Cmd": cmd, "Entrypoint": [], "Env": env,
                    "User": parent.config.get("User") or "",
                    "WorkingDir": parent.config.get("WorkingDir") or "",
                    "AttachStdout": True, "AttachStderr": True,
                    "HostConfig": {"NetworkMode": self.options.network_mode or "default"}}
            try:
                c = containers.create(None, body)
            except EngineError as exc:
                raise BuildError(str(exc)) from None
            cid = c.id
            await self.say(f" ---> Running in {cid[:12]}\n")
            code = await self._start_and_wait(cid)
            if code != 0:
                raise BuildError(f"The command '{' '.join(cmd)}' returned a non-zero code: "
                                 f"{code}", code)
            layer = await asyncio.to_thread(commit_snapshot, self.store, cid, parent,
                                            run=True, epoch=self.epoch, reapply=True)
            failed = False
            return layer, cid
        finally:
            if cid and (self.options.force_remove or (self.options.remove and not failed)):
                with suppress(EngineError):
                    await containers.remove(cid, force=True, volumes=True)
                await self.say(f"Removing intermediate container {cid[:12]}\n")
            await self._unhold(image_id)

    async def _hold(self, state: State) -> str:
        """``state`` as an image for a RUN container, shared by parallel stages."""
        async with self._hold_lock:
            count, made = self._held.get(state.id, (0, False))
            if not count:
                image_id, made = await asyncio.to_thread(materialize, self.store, state)
                assert image_id == state.id
            self._held[state.id] = (count + 1, made)
            return state.id

    async def _unhold(self, image_id: str) -> None:
        async with self._hold_lock:
            count, made = self._held[image_id]
            if count > 1:
                self._held[image_id] = (count - 1, made)
                return
            del self._held[image_id]
            if made:
                await asyncio.to_thread(release, self.store, image_id)

    async def _start_and_wait(self, cid: str) -> int:
        containers = self.engine.containers
        c = containers.get(cid)
        reader = JsonTail(containers.log_path(c))
        waiter = asyncio.ensure_future(containers.wait(cid, "next-exit"))
        try:
            await containers.start(cid)
        except EngineError as exc:
            waiter.cancel()
            raise BuildError(str(exc), 127 if "not found" in str(exc) else 126) from None
        while True:
            done = waiter.done()
            while batch := reader.read():
                for entry in batch:
                    await self.say(entry.data.decode("utf-8", "replace"))
            if done:
                break
            await asyncio.wait([waiter], timeout=0.1)
        status = waiter.result()
        while batch := reader.read():
            for entry in batch:
                await self.say(entry.data.decode("utf-8", "replace"))
        reader.close()
        return status.code


class _Sources:
    """Temporary places sources come from: read-only views of stages, heredoc files,
    downloads; all removed at the end of the step."""

    def __init__(self) -> None:
        self.views: list[tuple[Any, str, str]] = []
        self.dirs: list[str] = []

    def __enter__(self) -> _Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        for store, key, target in self.views:
            with suppress(OSError):
                unmount_all(target)
            with suppress(Exception):
                store.snapshots.remove(key)
            if not os.path.ismount(target):
                shutil.rmtree(target, ignore_errors=True)
        for directory in self.dirs:
            shutil.rmtree(directory, ignore_errors=True)

    def view(self, store: Any, state: State) -> str:
        target = tempfile.mkdtemp(prefix="build-from-", dir=store.root)
        if state.top is None:
            self.dirs.append(target)
            return target
        key = f"build-view-{secrets.token_hex(6)}"
        mounts = store.snapshots.view(key, state.top)
        self.views.append((store, key, target))
        mount_all(mounts, target)
        return target

    def _dir(self) -> str:
        directory = tempfile.mkdtemp(prefix="build-src-")
        self.dirs.append(directory)
        return directory

    def heredoc(self, name: str, text: str) -> copying.Source:
        path = os.path.join(self._dir(), name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return copying.Source(name, path)

    def download(self, url: str) -> copying.Source:
        import email.utils
        import posixpath
        import urllib.parse

        import httpx

        name = posixpath.basename(urllib.parse.urlparse(url).path) or "__unnamed__"
        path = os.path.join(self._dir(), name)
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
                response.raise_for_status()
                with open(path, "wb") as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
                modified = response.headers.get("Last-Modified")
        except httpx.HTTPError as exc:
            raise BuildError(f"failed to download {url}: {exc}") from None
        os.chmod(path, 0o600)
        if modified:
            with suppress(TypeError, ValueError):
                when = email.utils.parsedate_to_datetime(modified).timestamp()
                os.utime(path, (when, when))
        return copying.Source(name, path)


def expand_vars(text: str, env: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` in a heredoc's body (quotes and backslashes stay)."""
    return re.sub(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))",
                  lambda m: env.get(m.group(1) or m.group(2), ""), text)


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]
