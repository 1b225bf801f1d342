""".dockerignore with docker's pattern rules, on a real context directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sampan.build.context import apply_ignore
from sampan.build.dockerignore import Matcher

from .contexts import DOCKERIGNORE, make_context


def files(root: Path) -> set[str]:
    out = set()
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            out.add(os.path.relpath(os.path.join(directory, name), root))
    return out


def test_a_real_context(tmp_path: Path) -> None:
    root = make_context(tmp_path, "everything.Dockerfile")
    apply_ignore(str(root), Matcher.from_text(DOCKERIGNORE))
    left = files(root)
    assert {"a.txt", "keep.log", "sub/b", "sub/deep/c", "link", "Dockerfile",
            ".dockerignore"} <= left
    assert not {"debug.log", "ignored", "ignored/secret", "sub/x.tmp"} & left


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    ("*.log", "a.log", True),
    ("*.log", "dir/a.log", False),  # * stays in one path element
    ("**/*.log", "dir/deeper/a.log", True),
    ("**/*.log", "a.log", True),
    ("dir", "dir/inner/file", True),  # a parent directory matching excludes its children
    ("/dir/", "dir/file", True),  # leading and trailing slashes are cleaned away
    ("./dir", "dir/file", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("[a-c]x", "bx", True),
    ("[!a-c]x", "bx", False),
    ("*\n!keep", "keep", False),  # the last matching pattern wins
    ("*\n!keep\nkeep", "keep", True),
    ("dir\n!dir/keep", "dir/keep", False),
    ("# a comment\n\n", "anything", False),
    ("docs/**", "docs", False),
    ("docs/**", "docs/a/b", True),
])
def test_patterns(patterns: str, path: str, excluded: bool) -> None:
    assert Matcher.from_text(patterns).excluded(path) is excluded


def test_an_exception_keeps_a_file_inside_an_excluded_directory(tmp_path: Path) -> None:
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "keep").write_text("k")
    (tmp_path / "dir" / "sub" / "drop").write_text("d")
    apply_ignore(str(tmp_path), Matcher.from_text("dir\n!dir/keep\n"))
    assert files(tmp_path) == {"dir", "dir/keep"}


def test_a_bare_exclamation_mark_is_refused() -> None:
    with pytest.raises(ValueError):
        Matcher.from_text("!\n")
