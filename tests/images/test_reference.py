"""References parsed as docker/distribution does, with its error messages."""

from __future__ import annotations

import pytest

from sampan.images import InvalidReference, parse_any, parse_docker_ref, parse_normalized

DIGEST = "sha256:" + "c" * 64


@pytest.mark.parametrize("text,full,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ("Registry/app", "Registry/app:latest", "Registry/app:latest"),  # uppercase → a domain
    ("a__b.c--d/e", "a__b.c--d/e:latest", "a__b.c--d/e:latest"),  # not a domain: no domain
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"busybox:latest@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
])
def test_valid(text: str, full: str, familiar: str) -> None:
    ref = parse_docker_ref(text)
    assert str(ref) == full and ref.familiar() == familiar


@pytest.mark.parametrize("text,message", [
    ("", "invalid reference format"),
    ("UPPER", "repository name (library/UPPER) must be lowercase"),
    ("user/App", "repository name (user/App) must be lowercase"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("x:y:z", "invalid reference format"),
    ("-leading", "invalid reference format"),
    ("app:" + "t" * 129, "invalid reference format"),
    ("a/", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@md5:" + "0" * 32, "unsupported algorithm 'md5'"),
    ("x/" + "a" * 300, "must not be more than 255 characters"),
])
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_normalized(text)


def test_any_reference_takes_ids() -> None:
    assert parse_any("a" * 64) == "sha256:" + "a" * 64
    assert parse_any(DIGEST) == DIGEST
    assert str(parse_any("busybox")) == "docker.io/library/busybox"
