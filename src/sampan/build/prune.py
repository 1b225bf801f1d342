"""``builder prune``'s filters, as dockerd's /build/prune accepts them.

- ``until`` (or its older name ``unused-for``, not both): only entries not used since
  then: a Go duration (``24h``, ``1h30m``) before now, a unix timestamp or an RFC 3339
  date; buildkit's keep-duration.
- ``label`` / ``label!``: ``key`` or ``key=value`` on the image config of the step's
  result (dockerd accepts these and ignores them; sampan's cache entries carry labels).
- ``id`` (part of the entry's ID), ``parent`` (the ID the step started from),
  ``description`` (the step as recorded), ``type`` (every entry is ``regular``),
  ``inuse``/``shared`` (no entry is, between builds) and ``private`` (every entry is).

Each key takes one value (dockerd: "filters expect only one value"); an unknown key is
"invalid filter 'key'". Errors are ``ValueError`` with dockerd's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ..images.instructions import ChangeError, parse_duration
from .cache import Entry


def timestamp(text: str, now: float) -> float:
    """Docker's GetTimestamp: a duration before ``now``, a unix time or an RFC 3339 date."""
    if text != "0":
        try:
            return now - parse_duration(text) / 1e9
        except ChangeError:
            pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f'failed to parse value as time or duration: "{text}"') from None
    return when.timestamp()  # a date without a zone is local time, as in docker


def _labelled(labels: dict[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _truth(value: str) -> bool:
    return value.lower() not in ("false", "0")


# key -> whether an entry passes for the filter's value
_CHECKS: dict[str, Callable[[Entry, str], bool]] = {
    "label": lambda e, v: _labelled(e.labels, v),
    "label!": lambda e, v: not _labelled(e.labels, v),
    "id": lambda e, v: v in e.key,
    "parent": lambda e, v: e.parent == v,
    "description": lambda e, v: e.description == v,
    "type": lambda e, v: v == "regular",
    "inuse": lambda e, v: not _truth(v),  # no entry is in use between builds
    "shared": lambda e, v: not _truth(v),  # nor shared
    "private": lambda e, v: _truth(v),  # every one is private
}


KEYS = frozenset({"until", "unused-for", *_CHECKS})


@dataclass
class CacheFilter:
    """Which cache entries a prune may remove."""

    until: float | None = None  # only entries last used before this
    checks: list[tuple[Callable[[Entry, str], bool], str]] = field(default_factory=list)

    def __call__(self, entry: Entry) -> bool:
        return (self.until is None or entry.last_used < self.until) and \
            all(check(entry, value) for check, value in self.checks)


def parse_filters(wanted: dict[str, list[str]], now: float | None = None) -> CacheFilter:
    """The filter ``wanted`` (the request's ``filters``) describes."""
    now = time.time() if now is None else now
    for key, values in wanted.items():
        if key not in KEYS:
            raise ValueError(f"invalid filter '{key}'")
        if len(values) > 1:
            raise ValueError("filters expect only one value")
    if "until" in wanted and "unused-for" in wanted:
        raise ValueError('conflicting filters: "until" and "unused-for"')
    out = CacheFilter()
    for key in ("until", "unused-for"):
        for value in wanted.get(key, []):
            try:
                out.until = timestamp(value, now)
            except ValueError as exc:
                raise ValueError(f'"{key}" filter expects a duration (e.g., \'24h\') or a '
                                 f"timestamp: {exc}") from None
    out.checks = [(_CHECKS[key], value) for key, values in wanted.items() if key in _CHECKS
                  for value in values]
    return out
