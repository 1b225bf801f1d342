"""The Dockerfile parser on real files: instructions, directives, continuations, heredocs,
exec forms, flags, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampan.build.dockerfile import ParseError, parse

from .contexts import DOCKERFILES


def parse_file(path: Path) -> list[tuple[int, str, str]]:
    return [(i.line, i.keyword, i.args) for i in parse(path.read_text()).instructions]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


def test_every_instruction_of_a_real_file() -> None:
    dockerfile = parse((DOCKERFILES / "everything.Dockerfile").read_text())
    assert dockerfile.syntax == "docker/dockerfile:1"
    keywords = [i.keyword for i in dockerfile.instructions]
    assert keywords == ["arg", "from", "arg", "arg", "env", "maintainer", "workdir", "workdir",
                        "copy", "copy", "copy", "run", "label", "expose", "volume", "user",
                        "cmd", "healthcheck", "stopsignal", "shell", "onbuild", "entrypoint"]
    by_keyword = {i.keyword: i for i in dockerfile.instructions}
    assert by_keyword["cmd"].json_args == ["sh"]
    assert by_keyword["shell"].json_args == ["/bin/sh", "-ec"]
    assert by_keyword["entrypoint"].json_args is None
    run = by_keyword["run"]
    # the continuation is joined and the comment line inside it dropped
    assert run.args.startswith("echo $V > v && ls /app/sub &&")
    assert run.args.endswith("echo done") and "comment" not in run.args
    assert run.line == 15
    env = by_keyword["env"]
    assert env.args.split() == ["A=b", 'C="d', 'e"', "PATH_EXTRA=$V"]


def test_flags_and_stages(tmp_path: Path) -> None:
    parsed = parse((DOCKERFILES / "multistage.Dockerfile").read_text()).instructions
    copies = [i for i in parsed if i.keyword == "copy"]
    assert copies[0].flags == {"chown": "1234:1234"}
    assert copies[2].flags == {"from": "build"}
    froms = [i.args for i in parsed if i.keyword == "from"]
    assert froms == ["busybox AS build", "busybox AS unused", "busybox AS final",
                     "final AS extra"]
    path = write(tmp_path, "FROM --platform=linux/amd64 busybox\nCOPY --link a /b\n")
    first, second = parse(path.read_text()).instructions
    assert first.flags == {"platform": "linux/amd64"} and first.args == "busybox"
    assert second.flags == {"link": "true"}


def test_heredocs() -> None:
    ins = parse((DOCKERFILES / "heredoc.Dockerfile").read_text()).instructions
    run = ins[2]
    assert run.keyword == "run" and run.args == "<<EOF"
    assert run.heredocs[0].content == 'echo "hello $WHO" > /greeting\necho second line >> ' \
        "/greeting\n"
    assert run.heredocs[0].expand
    motd = ins[3]
    assert motd.heredocs[0].content == "welcome $WHO\n" and motd.heredocs[0].strip_tabs
    raw = ins[4]
    assert not raw.heredocs[0].expand
    assert [i.line for i in ins] == [1, 2, 3, 7, 10, 13]


def test_two_heredocs_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "FROM busybox\nCOPY <<A <<B /dir/\na\nA\nb\nB\nRUN true\n")
    ins = parse(path.read_text()).instructions
    assert [h.name for h in ins[1].heredocs] == ["A", "B"]
    assert [h.content for h in ins[1].heredocs] == ["a\n", "b\n"]
    assert ins[2].keyword == "run" and ins[2].line == 7


def test_escape_directive_and_backtick_continuation(tmp_path: Path) -> None:
    path = write(tmp_path, "# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY a\\b /c\n")
    dockerfile = parse(path.read_text())
    assert dockerfile.escape == "`"
    run, copy = dockerfile.instructions[1:]
    assert run.args == "echo a   b"
    assert copy.args == "a\\b /c"


def test_directives_only_at_the_top(tmp_path: Path) -> None:
    path = write(tmp_path, "FROM busybox\n# escape=`\nRUN echo a \\\n b\n")
    dockerfile = parse(path.read_text())
    assert dockerfile.escape == "\\"
    assert dockerfile.instructions[1].args == "echo a  b"


def test_keywords_are_case_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path, "from busybox\nrun true\nCmd [\"x\"]\n")
    assert [i.keyword for i in parse(path.read_text()).instructions] == ["from", "run", "cmd"]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("FROM busybox\n\nFOO bar\n", 3, "unknown instruction: FOO"),
    ("FROM busybox\nRUN <<EOF\necho hi\n", 2, "unterminated heredoc EOF"),
    ("FROM busybox\nRUN\n", 2, "RUN requires at least one argument"),
    ("# escape=x\nFROM busybox\n", 1, "invalid escape token"),
    ("FROM busybox\nCOPY --from a /b\n", 2, "invalid flag"),
])
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ParseError) as caught:
        parse(path.read_text())
    assert caught.value.line == line
    assert f"line {line}" in str(caught.value) and words in str(caught.value)


@pytest.mark.parametrize(("word", "escape", "expanded"), [
    (r"C:\Windows\System32", "`", r"C:\Windows\System32"),
    (r"C:\Windows\System32", "\\", "C:WindowsSystem32"),
    ('"say `"hi`" now"', "`", 'say "hi" now'),
    ('"say \\"hi\\" now"', "\\", 'say "hi" now'),
    ("`$HOME", "`", "$HOME"),
    ("\\$HOME", "`", "\\/root"),
    ('"$W\\bin"', "`", "C:\\x\\bin"),
    ("'a\\b`c'", "`", "a\\b`c"),
    ('"x``y"', "`", "x`y"),
    ("${UNSET:-C:\\d}", "`", "C:\\d"),
])
def test_the_word_lexer_uses_the_escape_character(word: str, escape: str,
                                                  expanded: str) -> None:
    from sampan.images.instructions import expand_word

    assert expand_word(word, {"HOME": "/root", "W": "C:\\x"}, escape) == expanded


def test_split_words_keeps_quotes_and_the_chosen_escape() -> None:
    from sampan.images.instructions import split_words

    assert split_words('A="x `" y" B=c\\ d', "`") == ['A="x `" y"', "B=c\\", "d"]
    assert split_words('A="x \\" y" B=c\\ d') == ['A="x \\" y"', "B=c\\ d"]
