"""Strict JSON → dataclass decoding with errors that name the offending field.

The OCI and Docker structures are plain JSON; runtimes that silently ignore a typo in
config.json are hard to debug, so every value is type-checked and every error carries the
dotted path of the field (``linux.resources.memory.limit: expected integer, got "1g"``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, cast, get_args, get_origin

T = TypeVar("T")


class DecodeError(ValueError):
    """A JSON document does not match the structure it should have."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def json_name(field: dataclasses.Field[Any]) -> str:
    """The JSON key of a field: explicit metadata, else snake_case → camelCase."""
    name: str | None = field.metadata.get("json")
    if name:
        return name
    head, *rest = field.name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_hints_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _hints_cache.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _hints_cache[cls] = hints
    return hints


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def decode(cls: type[T], data: Any, path: str = "") -> T:
    """Build ``cls`` (a dataclass) from ``data``, checking every field's type."""
    return typing.cast(T, _decode(cls, data, path))


def _decode(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, value, path)
            except DecodeError as exc:
                errors.append(exc)
        raise errors[0]
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise DecodeError(path, f"expected array, got {_type_name(value)}")
        (item,) = get_args(tp)
        return [_decode(item, v, _join(path, i)) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise DecodeError(path, f"expected object, got {_type_name(value)}")
        _, item = get_args(tp)
        return {k: _decode(item, v, _join(path, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise DecodeError(path, f"expected object, got {_type_name(value)}")
        hints = _hints(tp)  # type: ignore[arg-type]
        kwargs = {}
        for field in dataclasses.fields(tp):
            key = json_name(field)
            if key in value and value[key] is not None:
                kwargs[field.name] = _decode(hints[field.name], value[key], _join(path, key))
            elif (field.default is dataclasses.MISSING
                  and field.default_factory is dataclasses.MISSING):
                raise DecodeError(_join(path, key), "required field is missing")
        return cast(Any, tp)(**kwargs)
    if tp is bool:
        if not isinstance(value, bool):
            raise DecodeError(path, f"expected boolean, got {_type_name(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DecodeError(path, f"expected integer, got {_type_name(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError(path, f"expected number, got {_type_name(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise DecodeError(path, f"expected string, got {_type_name(value)}")
        return value
    raise TypeError(f"{path}: cannot decode into {tp!r}")


def encode(obj: Any) -> Any:
    """The JSON form of a dataclass tree, leaving out fields that are None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            if value is not None:
                out[json_name(field)] = encode(value)
        return out
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    return obj
