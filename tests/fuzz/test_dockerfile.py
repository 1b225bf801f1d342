"""Fuzzing the Dockerfile parser (issue 9): any text either parses, into instructions that
start on real lines, or raises ParseError naming a line of the file; nothing else escapes.

Lines are drawn from the parser's own vocabulary (instructions, flags, heredocs, escape
characters, directives, JSON arrays, comments) so that the rare paths are reached, mixed
with arbitrary text.
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from sampan.build.dockerfile import INSTRUCTIONS, ParseError, parse

KEYWORDS = [*sorted(INSTRUCTIONS), "FROM", "RUN", "Copy", "bogus", "", "#", "# syntax=x",
            "# escape=`", "# escape=\\", "# escape=x", "# check=y"]
WORDS = ["--mount=type=cache,target=/x", "--from=a", "--link", "--chown", "--=", "--",
         "-- x", "<<EOF", "<<-EOF", "<<'EOF'", '<<"EOF"', "<<EOF <<END", "EOF", "END",
         "\tEOF", '["a", "b"]', '["a", 1]', "[", "[]", "\\", "`", "a=b", "a", "$x", "${x:-y}",
         "\t", "\ufeff", "\r", "\u00a0", "\x0b", "\x00"]
line = st.one_of(
    st.tuples(st.sampled_from(KEYWORDS), st.lists(st.sampled_from(WORDS), max_size=4))
    .map(lambda t: " ".join([t[0], *t[1]])),
    st.text(max_size=30),
)
dockerfiles = st.one_of(st.lists(line, max_size=12).map("\n".join),
                        st.lists(line, max_size=12).map("\r\n".join),
                        st.text(max_size=200))


@given(dockerfiles)
@example("")
@example("\\")
@example("FROM a\\")
@example("RUN <<EOF")
@example("# escape=`\nFROM a `\n")
@example("\ufeff# escape=x\nFROM a")
@example("RUN --")
@example("RUN --\u00a0x")
@example("FROM\u00a0a")
@example("FROM a\nRUN <<EOF <<END\nx\nEOF\n")
@example("COPY <<EOF\n")
def test_parse_succeeds_or_names_a_line(text: str) -> None:
    line_count = len(text.replace("\r\n", "\n").split("\n"))
    try:
        dockerfile = parse(text)
    except ParseError as exc:
        assert 1 <= exc.line <= line_count
        assert re.match(rf"dockerfile parse error line {exc.line}: \S", str(exc))
        return
    assert dockerfile.escape in ("\\", "`")
    previous = 0
    for instruction in dockerfile.instructions:
        assert instruction.keyword in INSTRUCTIONS
        assert previous < instruction.line <= line_count
        previous = instruction.line
        if instruction.json_args is not None:
            assert all(isinstance(arg, str) for arg in instruction.json_args)
