"""Fuzzing the image reference parser (issue 9) against distribution/reference's grammar.

The oracle below is written from the grammar in distribution/reference (reference.go's
EBNF and regexp.go, v0.6) and its ParseNormalizedNamed / splitDockerDomain, independently of
sampan's parser: every string is accepted by both with the same parts, or refused by both
(with InvalidReference, never another exception). Go's regexp anchors ``$`` at the very end
of the text, so the oracle uses ``fullmatch``.

One deliberate difference: go-digest also verifies sha384 digests; sampan verifies sha256
and sha512 only, so the oracle refuses sha384 as sampan does.
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from sampan.images.reference import InvalidReference, Reference, parse_any, parse_normalized

ALPHA_NUMERIC = "[a-z0-9]+"
SEPARATOR = "(?:[_.]|__|-+)"
PATH_COMPONENT = f"{ALPHA_NUMERIC}(?:{SEPARATOR}{ALPHA_NUMERIC})*"
REMOTE_NAME = f"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*"
DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
HOST = rf"(?:{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
DOMAIN = f"{HOST}(?::[0-9]+)?"
TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(f"((?:{DOMAIN}/)?{REMOTE_NAME})(?::({TAG}))?(?:@({DIGEST}))?")
NAME = re.compile(f"(?:({DOMAIN})/)?({REMOTE_NAME})")
DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}


def oracle(text: str) -> tuple[str, str, str | None, str | None] | None:
    """(domain, path, tag, digest) as ParseNormalizedNamed returns them, or None."""
    if re.fullmatch("[a-f0-9]{64}", text):
        return None
    first, slash, rest = text.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"
                     and first.lower() == first):
        domain, remainder = "docker.io", text
    else:
        domain, remainder = first, rest
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        return None
    match = REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None:
        return None
    name, tag, digest = match.groups()
    named = NAME.fullmatch(name)
    assert named is not None
    if len(named.group(2)) > 255:
        return None
    if digest is not None:
        algorithm, _, encoded = digest.partition(":")
        if len(encoded) != DIGEST_LENGTHS.get(algorithm) or not re.fullmatch("[a-f0-9]+",
                                                                           encoded):
            return None
    return named.group(1) or "", named.group(2), tag, digest


HEX = "0123456789abcdef"
grammatical = st.from_regex(REFERENCE, fullmatch=True)
near_miss = st.text(st.sampled_from("abcAZ09._-:/@[]\n \t"), max_size=40)
with_digest = st.tuples(st.from_regex(f"(?:{DOMAIN}/)?{REMOTE_NAME}", fullmatch=True),
                        st.sampled_from(["sha256", "sha512", "sha384", "SHA256", "md5"]),
                        st.text(st.sampled_from(HEX + "ABCg"), min_size=32, max_size=130)
                        ).map(lambda t: f"{t[0]}@{t[1]}:{t[2]}")
references = st.one_of(grammatical, near_miss, with_digest, st.text(max_size=30),
                       grammatical.map(lambda s: s + "\n"), grammatical.map(str.upper))


@given(references)
@example("busybox\n")  # found: Python's $ matched before a final newline
@example("localhost:5000/app:v1\n")
@example("a" * 64)
@example("docker.io/" + "a" * 250)
@example("Foo/bar")
@example("foo/Bar")
@example("[::1]:5000/app")
@example("busybox@sha256:" + "a" * 64)
@example("busybox@sha384:" + "a" * 96)
@example("busybox:tag@sha256:" + "A" * 64)
def test_parse_normalized_agrees_with_the_grammar(text: str) -> None:
    expected = oracle(text)
    try:
        ref = parse_normalized(text)
    except InvalidReference:
        assert expected is None, f"{text!r} is a valid reference: {expected}"
        return
    assert expected is not None, f"{text!r} was accepted as {ref}"
    assert (ref.domain, ref.path, ref.tag, ref.digest) == expected
    assert parse_normalized(str(ref)) == ref
    assert parse_normalized(ref.familiar()) == ref


@given(references)
@example("sha256:" + "a" * 64)
@example("a" * 64)
@example("sha256:" + "a" * 63)
def test_parse_any_returns_an_id_or_a_reference(text: str) -> None:
    try:
        result = parse_any(text)
    except InvalidReference:
        return
    if isinstance(result, str):
        assert re.fullmatch("sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})", result)
    else:
        assert isinstance(result, Reference)
