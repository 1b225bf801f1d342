"""Stages of a Dockerfile: split at FROM, named, and the ones a target needs.

ARGs before the first FROM are the meta args, usable in FROM lines. A stage depends on the
stage its FROM names and on the stages its ``COPY --from`` names; building a target builds
only the stages it depends on, directly or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..images import instructions as lex
from ..images.instructions import ChangeError
from .dockerfile import Dockerfile, Instruction
from .errors import BuildError


@dataclass
class Stage:
    index: int
    base: str  # the FROM image or stage name, meta args expanded
    name: str | None  # the AS name (lower case)
    from_ins: Instruction
    platform: str | None
    instructions: list[Instruction] = field(default_factory=list)
    deps: set[int] = field(default_factory=set)


@dataclass
class Plan:
    meta_args: list[Instruction]
    stages: list[Stage]
    target: int  # the stage to build
    escape: str = "\\"  # the Dockerfile's escape character

    def needed(self) -> list[Stage]:
        """The stages the target depends on and the target, in file order."""
        wanted: set[int] = set()
        todo = [self.target]
        while todo:
            index = todo.pop()
            if index in wanted:
                continue
            wanted.add(index)
            todo.extend(self.stages[index].deps)
        return [s for s in self.stages if s.index in wanted]


def _expand(text: str, env: dict[str, str], line: int, escape: str) -> str:
    try:
        return lex.expand_word(text, env, escape)
    except ChangeError as exc:
        raise BuildError(f"Dockerfile line {line}: {exc}") from None


def meta_env(meta_args: list[Instruction], build_args: dict[str, str | None],
             escape: str = "\\") -> dict[str, str]:
    """The values of the meta args (a --build-arg wins over the default)."""
    env: dict[str, str] = {}
    for ins in meta_args:
        for word in lex.split_words(ins.args, escape):
            name, sep, default = word.partition("=")
            given = build_args.get(name)
            if given is not None:
                env[name] = given
            elif sep:
                env[name] = _expand(default, env, ins.line, escape)
    return env


def find_stage(stages: list[Stage], ref: str, before: int) -> Stage | None:
    """The stage ``ref`` (a name or an index) names, among the first ``before`` stages."""
    lowered = ref.lower()
    for stage in stages[:before]:
        if stage.name == lowered:
            return stage
    if ref.isdigit() and int(ref) < before:
        return stages[int(ref)]
    return None


def plan(dockerfile: Dockerfile, build_args: dict[str, str | None], target: str) -> Plan:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in dockerfile.instructions:
        if ins.keyword == "from":
            env = meta_env(meta, build_args, dockerfile.escape)
            words = ins.args.split()
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                raise BuildError(f"Dockerfile line {ins.line}: FROM requires either one or "
                                 "three arguments")
            name = words[2].lower() if len(words) == 3 else None
            if name and any(s.name == name for s in stages):
                raise BuildError(f"Dockerfile line {ins.line}: duplicate name {name}")
            base = _expand(words[0], env, ins.line, dockerfile.escape)
            platform = ins.flags.get("platform")
            stage = Stage(index=len(stages), base=base, name=name, from_ins=ins,
                          platform=_expand(platform, env, ins.line, dockerfile.escape)
                          if platform else None)
            below = find_stage(stages, base, len(stages))
            if below is not None:
                stage.deps.add(below.index)
            stages.append(stage)
        elif not stages:
            if ins.keyword != "arg":
                raise BuildError(f"Dockerfile line {ins.line}: no build stage in current "
                                 f"context ({ins.keyword.upper()} before FROM)")
            meta.append(ins)
        else:
            stage = stages[-1]
            stage.instructions.append(ins)
            source = ins.flags.get("from") if ins.keyword in ("copy", "add") else None
            if source:
                below = find_stage(stages, source, stage.index)
                if below is not None:
                    stage.deps.add(below.index)
                elif source.isdigit() or source.lower() in {s.name for s in stages}:
                    raise BuildError(f"Dockerfile line {ins.line}: COPY --from={source}: "
                                     "a stage can only copy from a stage before it")
    if not stages:
        raise BuildError("the Dockerfile has no FROM instruction")
    index = len(stages) - 1
    if target:
        found = next((s for s in stages if s.name == target.lower()), None)
        if found is None:
            raise BuildError(f"failed to reach build target {target} in Dockerfile")
        index = found.index
    return Plan(meta_args=meta, stages=stages, target=index, escape=dockerfile.escape)
