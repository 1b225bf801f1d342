"""Image references exactly as Docker reads them (the distribution/reference grammar).

``busybox`` is ``docker.io/library/busybox:latest``; ``localhost:5000/app:v1`` names a
registry with a port; ``name@sha256:…`` pins a manifest digest; a bare 64-hex string is an
image ID. Error messages are Docker's, so users see the same complaint for the same typo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..oci.image import InvalidDigest, parse_digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = f"{_DOMAIN_COMPONENT}(?:\\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = f"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_REMOTE = f"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_NAME = f"(?:{_DOMAIN}/)?{_REMOTE}"

# Anchored with \Z: Python's $ also matches before a final newline, Go's does not.
_REFERENCE_RE = re.compile(f"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?\\Z", re.ASCII)
_ANCHORED_NAME_RE = re.compile(f"^(?:({_DOMAIN})/)?({_REMOTE})\\Z", re.ASCII)
_TAG_RE = re.compile(f"^{_TAG}\\Z", re.ASCII)
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}\Z")


class InvalidReference(ValueError):
    """A string that is not a valid image reference (Docker's wording)."""


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def familiar_name(self) -> str:
        """The short name Docker shows: ``busybox``, ``user/app``, ``host:5000/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_PREFIX) and "/" not in self.path[len(OFFICIAL_PREFIX):]:
            return self.path[len(OFFICIAL_PREFIX):]
        return self.path

    def familiar(self) -> str:
        text = self.familiar_name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidReference("invalid tag format")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_PREFIX + name
    if first == "localhost":
        domain, remote = first, rest
    elif first == LEGACY_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote


def _parse(text: str) -> Reference:
    if not text:
        raise InvalidReference("repository name must have at least one component")
    match = _REFERENCE_RE.match(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and _REFERENCE_RE.match(lowered):
            raise InvalidReference("repository name must be lowercase")
        raise InvalidReference("invalid reference format")
    name, tag, digest = match.groups()
    named = _ANCHORED_NAME_RE.match(name)
    assert named is not None
    domain, path = named.group(1) or "", named.group(2)
    if len(path) > NAME_MAX:
        raise InvalidReference(f"repository name must not be more than {NAME_MAX} characters")
    if digest:
        try:
            parse_digest(digest)
        except InvalidDigest as exc:
            raise InvalidReference(str(exc)) from None
    return Reference(domain, path, tag, digest)


def parse_normalized(text: str) -> Reference:
    """ParseNormalizedNamed: a familiar or full name, with optional tag and digest."""
    if _IDENTIFIER_RE.match(text):
        raise InvalidReference(f"invalid repository name ({text}), cannot specify 64-byte "
                               "hexadecimal strings")
    domain, remainder = _split_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"invalid reference format: repository name ({remote}) must "
                               "be lowercase")
    return _parse(f"{domain}/{remainder}")


def parse_docker_ref(text: str) -> Reference:
    """ParseDockerRef: normalized, ``latest`` added to a bare name, a digest wins over a tag."""
    ref = parse_normalized(text)
    if ref.digest:
        return ref.with_digest(ref.digest)
    return ref if ref.tag else ref.with_tag(DEFAULT_TAG)


def parse_any(text: str) -> Reference | str:
    """ParseAnyReference: an image ID (``sha256:…`` or 64 hex digits) or a reference."""
    if _IDENTIFIER_RE.match(text):
        return f"sha256:{text}"
    try:
        parse_digest(text)
    except InvalidDigest:
        return parse_normalized(text)
    return text
