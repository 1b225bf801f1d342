"""JSON for the runtime's start path, on the `_json` accelerator alone.

The `json` package imports `re` (and with it enum, functools, collections) for a few
patterns that its C accelerator does not need: about 10 ms of every container start. The
scanner and encoder here are the same C objects `json` itself uses; where `_json` lacks
them (an interpreter other than CPython), the `json` module is used instead. Indented
output (``state``, ``list``: podman and conmon run ``state`` again and again) is laid out
here around the same encoder, as ``json.dumps(obj, indent=n)`` lays it out.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - not CPython
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"


class _Context:
    """What the C scanner reads from json.JSONDecoder: plain JSON, nothing hooked."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo: dict[str, str] = {}


def _no_default(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


if _json is not None:
    _scan: Any = _json.make_scanner(_Context())  # type: ignore[arg-type]
    _encode: Any = _json.make_encoder(None, _no_default, _json.encode_basestring_ascii, None,
                                      ":", ",", False, False, True)


class JSONError(ValueError):
    """Not a JSON document (the json module's JSONDecodeError is a ValueError too)."""


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode()
    if _json is None:
        import json

        return json.loads(text)
    body = text.strip(_WHITESPACE)
    try:
        value, end = _scan(body, 0)
    except StopIteration as exc:
        raise JSONError(f"Expecting value at char {exc.value}") from None
    if end != len(body):
        raise JSONError(f"Extra data at char {end}")
    return value


def dumps(obj: Any, indent: int | str | None = None) -> str:
    if _json is None:
        import json

        return json.dumps(obj, indent=indent)
    if indent is not None:
        return _indented(obj, indent if isinstance(indent, str) else " " * indent, "\n")
    return "".join(_encode(obj, 0))


def _indented(obj: Any, step: str, newline: str) -> str:
    inner = newline + step
    if isinstance(obj, dict) and obj:
        items = (f"{_encode(str(k), 0)[0]}: {_indented(v, step, inner)}" for k, v in obj.items())
        return "{" + inner + ("," + inner).join(items) + newline + "}"
    if isinstance(obj, (list, tuple)) and obj:
        return "[" + inner + ("," + inner).join(_indented(v, step, inner) for v in obj) + \
            newline + "]"
    return "".join(_encode(obj, 0))

