"""Typed records for the runtime's start path: what dataclasses gives, without its cost.

Every `sampan-runtime` command is a fresh interpreter, and its imports are most of a
container's start-up. `dataclasses` pulls in `inspect` (with ast, dis, tokenize) and
compiles three methods per class with exec(): about 30 ms for the ~40 classes the runtime
loads, more than runc takes for a whole `run`. A record keeps the declaration style
(annotated fields, defaults, ``field(...)``) and builds its methods from closures; mypy
checks it as a dataclass (``dataclass_transform``). String annotations (``from __future__
import annotations``) are resolved on first use, in the module's namespace, without the
`typing` module.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field of a record; ``type`` is resolved on first use (see `fields`)."""

    __slots__ = ("default", "default_factory", "metadata", "module", "name", "type")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING,
                 metadata: dict[str, Any] | None = None) -> None:
        self.name = ""
        self.module = ""  # where the annotation is resolved
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.metadata = metadata or {}

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is MISSING


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING,
          metadata: dict[str, Any] | None = None) -> Any:
    return Field(default, default_factory, metadata)


def _collect(cls: type) -> tuple[Field, ...]:
    collected: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in getattr(base, "__record_fields__", ()):
            collected[f.name] = f
    # Not inspect.get_annotations: importing inspect is what records avoid.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if isinstance(annotation, str) and annotation.startswith("ClassVar"):
            continue
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name, f.type, f.module = name, annotation, cls.__module__
        if isinstance(value, Field):
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        collected[name] = f
    return tuple(collected.values())


def _build(cls: type) -> type:
    own = _collect(cls)
    names = tuple(f.name for f in own)
    by_name = {f.name: f for f in own}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments")
        for name, value in zip(names, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{cls.__name__}() got multiple values for {name!r}")
            kwargs[name] = value
        for name in names[len(args):]:
            if name not in kwargs:
                f = by_name[name]
                if f.default is not MISSING:
                    kwargs[name] = f.default
                elif f.default_factory is not MISSING:
                    kwargs[name] = f.default_factory()
                else:
                    raise TypeError(f"{cls.__name__}() missing argument {name!r}")
        if len(kwargs) != len(names):
            unknown = sorted(set(kwargs) - set(names))
            raise TypeError(f"{cls.__name__}() got unexpected arguments {unknown}")
        for name in names:
            object.__setattr__(self, name, kwargs[name])

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{cls.__qualname__}({inner})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    methods: dict[str, Any] = {"__record_fields__": own, "__init__": __init__,
                               "__match_args__": names}
    if "__repr__" not in cls.__dict__:
        methods["__repr__"] = __repr__
    if "__eq__" not in cls.__dict__:
        methods.update(__eq__=__eq__, __hash__=None)
    for name, value in methods.items():
        setattr(cls, name, value)
    return cls


if TYPE_CHECKING:
    @dataclass_transform(field_specifiers=(field,))
    def record(cls: type[T]) -> type[T]: ...
else:
    def record(cls):
        """Make ``cls`` a record: __init__, __repr__ and __eq__ over its annotated fields."""
        return _build(cls)


def is_record(obj: object) -> bool:
    return hasattr(obj, "__record_fields__")


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, their annotations resolved to types."""
    cls = obj if isinstance(obj, type) else type(obj)
    own: tuple[Field, ...] = getattr(cls, "__record_fields__")  # noqa: B009
    for f in own:
        if isinstance(f.type, str):
            f.type = _resolve(f.type, f.module)
    return own


_resolved: dict[tuple[str, str], Any] = {}


def _resolve(annotation: str, module: str) -> Any:
    """An annotation's type, evaluated once per module (many fields share one): a
    container's start decodes its spec, whose records have some 200 fields."""
    key = (annotation, module)
    try:
        return _resolved[key]
    except KeyError:
        # the module's own namespace, not a copy: an annotation assigns nothing
        value = _resolved[key] = eval(annotation, sys.modules[module].__dict__)
        return value


def replace(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with some fields changed (as dataclasses.replace)."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    values.update(changes)
    return type(obj)(**values)
