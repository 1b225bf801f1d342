"""Strict JSON → record (or dataclass) decoding with errors that name the offending field.

The OCI and Docker structures are plain JSON; runtimes that silently ignore a typo in
config.json are hard to debug, so every value is type-checked and every error carries the
dotted path of the field (``linux.resources.memory.limit: expected integer, got "1g"``).
Records (`sampan.oci.record`, on the runtime's start path) are decoded without importing
`typing` or `dataclasses`; dataclasses still work, their hints resolved through `typing`.
"""

from __future__ import annotations

import sys

from . import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import UnionType as _UnionType
    from typing import Any, TypeVar

    T = TypeVar("T")
else:
    # as the `types` module itself defines it: importing `types` costs a start 0.3 ms
    _UnionType = type(int | str)


class DecodeError(ValueError):
    """A JSON document does not match the structure it should have."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def json_name(field: Any) -> str:
    """The JSON key of a field: explicit metadata, else snake_case → camelCase."""
    name: str | None = field.metadata.get("json")
    if name:
        return name
    head, *rest = field.name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_fields_cache: dict[type, list[tuple[str, str, Any, bool]]] = {}


def _struct_fields(cls: type) -> list[tuple[str, str, Any, bool]] | None:
    """(attribute, JSON key, type, required) of a record or dataclass; None otherwise."""
    cached = _fields_cache.get(cls)
    if cached is not None:
        return cached
    if record.is_record(cls):
        out = [(f.name, json_name(f), f.type, f.required) for f in record.fields(cls)]
    elif hasattr(cls, "__dataclass_fields__"):
        import dataclasses
        import typing

        hints = typing.get_type_hints(cls)
        out = [(f.name, json_name(f), hints[f.name],
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
               for f in dataclasses.fields(cls)]
    else:
        return None
    _fields_cache[cls] = out
    return out


def prepare(cls: type) -> None:
    """Resolve the fields of ``cls`` and of every record it holds, as a first ``decode``
    would: a process that forks decoders (the warm helper) does it once for all of them,
    where each child would otherwise do it again (about 2 ms for a container's spec)."""
    todo: list[Any] = [cls]
    while todo:
        tp = todo.pop()
        args = getattr(tp, "__args__", None)  # list[X], dict[K, V], X | None
        if args:
            todo.extend(args)
        elif isinstance(tp, type) and tp not in _fields_cache:
            todo.extend(field_type for _, _, field_type, _ in _struct_fields(tp) or ())


def _is_any(tp: Any) -> bool:
    typing = sys.modules.get("typing")
    return tp is object or (typing is not None and tp is typing.Any)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if isinstance(tp, _UnionType):
        return tp.__args__
    typing = sys.modules.get("typing")
    if typing is not None and getattr(tp, "__origin__", None) is typing.Union:
        return tp.__args__
    return None


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


class _Mismatch(Exception):
    """A value that does not fit; ``keys`` collects where, innermost first, as it unwinds:
    the path is spelled out only for an error, not for every value decoded."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.keys: list[str | int] = []


def _spell(path: str, keys: list[str | int]) -> str:
    for key in reversed(keys):
        path = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key
    return path


def decode(cls: type[T], data: Any, path: str = "") -> T:
    """Build ``cls`` (a record or dataclass) from ``data``, checking every field's type."""
    try:
        result: T = _decode(cls, data)
    except _Mismatch as exc:
        raise DecodeError(_spell(path, exc.keys), exc.message) from None
    return result


def _decode(tp: Any, value: Any) -> Any:
    options = _union_args(tp)
    if options is not None:
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, value)
            except _Mismatch as exc:
                errors.append(exc)
        raise errors[0]
    if _is_any(tp):
        return value
    origin = getattr(tp, "__origin__", None)
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch(f"expected array, got {_type_name(value)}")
        (item,) = tp.__args__
        out = []
        for i, v in enumerate(value):
            try:
                out.append(_decode(item, v))
            except _Mismatch as exc:
                exc.keys.append(i)
                raise
        return out
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(f"expected object, got {_type_name(value)}")
        _, item = tp.__args__
        mapping = {}
        for k, v in value.items():
            try:
                mapping[k] = _decode(item, v)
            except _Mismatch as exc:
                exc.keys.append(k)
                raise
        return mapping
    struct = _struct_fields(tp) if isinstance(tp, type) else None
    if struct is not None:
        if not isinstance(value, dict):
            raise _Mismatch(f"expected object, got {_type_name(value)}")
        kwargs = {}
        for name, key, field_type, required in struct:
            if key in value and value[key] is not None:
                try:
                    kwargs[name] = _decode(field_type, value[key])
                except _Mismatch as exc:
                    exc.keys.append(key)
                    raise
            elif required:
                missing = _Mismatch("required field is missing")
                missing.keys.append(key)
                raise missing
        return tp(**kwargs)
    if tp is bool:
        if not isinstance(value, bool):
            raise _Mismatch(f"expected boolean, got {_type_name(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch(f"expected integer, got {_type_name(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Mismatch(f"expected number, got {_type_name(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _Mismatch(f"expected string, got {_type_name(value)}")
        return value
    raise TypeError(f"cannot decode into {tp!r}")


def encode(obj: Any) -> Any:
    """The JSON form of a record or dataclass tree, leaving out fields that are None."""
    if not isinstance(obj, type) and (record.is_record(obj)
                                      or hasattr(obj, "__dataclass_fields__")):
        out = {}
        for name, key, _, _ in _struct_fields(type(obj)) or ():
            value = getattr(obj, name)
            if value is not None:
                out[key] = encode(value)
        return out
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    return obj
