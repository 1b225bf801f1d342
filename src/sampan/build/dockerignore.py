""".dockerignore: which context paths a build leaves out, by moby's patternmatcher rules.

Each line is a pattern (``#`` lines and blank lines skipped), cleaned like a path, a leading
``/`` dropped; ``!`` makes it an exception. ``*`` and ``?`` stay within one path element,
``**`` spans any number of them, ``[...]`` is a class and ``\\`` escapes. A path is excluded
when the last pattern matching it, or matching one of its parent directories, is not an
exception.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # a ``!`` exception
    regex: re.Pattern[str]


def _clean(text: str) -> str:
    cleaned = posixpath.normpath(text)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return cleaned


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                if pattern[i + 1:i + 2] == "/":
                    i += 1
                    out.append("(.*/)?")  # **/ : zero or more directories
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1:end]
            if body.startswith("^"):
                body = "!" + body[1:]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body)
                       .replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    out.append("$")
    return re.compile("".join(out))


def parse_patterns(text: str) -> list[Pattern]:
    patterns: list[Pattern] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
            if not line:
                raise ValueError('illegal exclusion pattern: "!"')
        cleaned = _clean(line)
        patterns.append(Pattern(cleaned, exclusion, _regex(cleaned)))
    return patterns


class Matcher:
    """Decides, path by path (relative to the context root, ``/``-separated), exclusion."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns

    @classmethod
    def from_text(cls, text: str) -> Matcher:
        return cls(parse_patterns(text))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        path = _clean(path)
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            hit = bool(pattern.regex.match(path))
            if not hit:
                for i in range(len(parents)):
                    if pattern.regex.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched
