"""OCI image-spec and Docker image formats as typed dataclasses.

Manifests, indexes (manifest lists) and image configs from registries, `docker save` archives
and OCI layouts all come through here, so every digest is validated and every document is
decoded strictly (``sampan.oci.decode``): a malformed image fails with the field that is wrong.
Docker v2 schema 2 documents have the same shape as their OCI counterparts and share the
classes; only their media types differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .decode import DecodeError, decode, encode

# Media types (OCI image-spec v1.1 and Docker's distribution formats).
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
# Layer media type → compression ("" for a plain tar).
LAYER_TYPES = {
    OCI_LAYER: "", OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: "", OCI_LAYER_NONDIST_GZIP: "gzip", OCI_LAYER_NONDIST_ZSTD: "zstd",
    DOCKER_LAYER: "", DOCKER_LAYER_GZIP: "gzip", DOCKER_LAYER_FOREIGN: "gzip",
}

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
# containerd and Docker's OCI exports put the full image name here.
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

# \Z, not $: Python's $ also matches before a final newline.
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}


class InvalidDigest(ValueError):
    """A string is not a digest sampan can verify."""


def parse_digest(digest: str) -> tuple[str, str]:
    """(algorithm, hex) of a sha256 or sha512 digest; anything else is an error."""
    match = _DIGEST_RE.match(digest)
    if not match:
        raise InvalidDigest(f"invalid digest {digest!r}: expected algorithm:hex")
    algorithm, encoded = match.groups()
    length = _HEX_LENGTHS.get(algorithm)
    if length is None:
        raise InvalidDigest(f"invalid digest {digest!r}: unsupported algorithm {algorithm!r}"
                            " (sha256 and sha512 are)")
    if len(encoded) != length or not all(c in "0123456789abcdef" for c in encoded):
        raise InvalidDigest(f"invalid digest {digest!r}: {algorithm} needs {length} "
                            "lowercase hex digits")
    return algorithm, encoded


def new_hash(digest_or_algorithm: str) -> Any:
    """A hashlib object for the algorithm of a digest (or an algorithm name)."""
    algorithm = (parse_digest(digest_or_algorithm)[0] if ":" in digest_or_algorithm
                 else digest_or_algorithm)
    if algorithm not in _HEX_LENGTHS:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of every layer prefix (image-spec config.md), naming shared snapshots."""
    chain: list[str] = []
    for diff_id in diff_ids:
        parse_digest(diff_id)
        if chain:
            chain.append(digest_of(f"{chain[-1]} {diff_id}".encode()))
        else:
            chain.append(diff_id)
    return chain


def _j(name: str) -> dict[str, str]:
    return {"json": name}


@dataclass
class Platform:
    architecture: str
    os: str
    os_version: str | None = field(default=None, metadata=_j("os.version"))
    os_features: list[str] | None = field(default=None, metadata=_j("os.features"))
    variant: str | None = None
    features: list[str] | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    data: str | None = None
    platform: Platform | None = None
    artifact_type: str | None = None


@dataclass
class Manifest:
    """An OCI image manifest or a Docker v2 schema 2 manifest."""

    schema_version: int
    config: Descriptor
    layers: list[Descriptor]
    media_type: str | None = None
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


@dataclass
class Index:
    """An OCI image index or a Docker manifest list."""

    schema_version: int
    manifests: list[Descriptor]
    media_type: str | None = None
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


@dataclass
class HealthConfig:
    test: list[str] | None = field(default=None, metadata=_j("Test"))
    interval: int | None = field(default=None, metadata=_j("Interval"))
    timeout: int | None = field(default=None, metadata=_j("Timeout"))
    start_period: int | None = field(default=None, metadata=_j("StartPeriod"))
    start_interval: int | None = field(default=None, metadata=_j("StartInterval"))
    retries: int | None = field(default=None, metadata=_j("Retries"))


@dataclass
class ContainerConfig:
    """The ``config`` of an image config: the defaults a container starts with."""

    user: str | None = field(default=None, metadata=_j("User"))
    exposed_ports: dict[str, Any] | None = field(default=None, metadata=_j("ExposedPorts"))
    env: list[str] | None = field(default=None, metadata=_j("Env"))
    entrypoint: list[str] | None = field(default=None, metadata=_j("Entrypoint"))
    cmd: list[str] | None = field(default=None, metadata=_j("Cmd"))
    volumes: dict[str, Any] | None = field(default=None, metadata=_j("Volumes"))
    working_dir: str | None = field(default=None, metadata=_j("WorkingDir"))
    labels: dict[str, str] | None = field(default=None, metadata=_j("Labels"))
    stop_signal: str | None = field(default=None, metadata=_j("StopSignal"))
    args_escaped: bool | None = field(default=None, metadata=_j("ArgsEscaped"))
    healthcheck: HealthConfig | None = field(default=None, metadata=_j("Healthcheck"))
    on_build: list[str] | None = field(default=None, metadata=_j("OnBuild"))
    shell: list[str] | None = field(default=None, metadata=_j("Shell"))
    stop_timeout: int | None = field(default=None, metadata=_j("StopTimeout"))


@dataclass
class RootFS:
    type: str
    diff_ids: list[str] = field(metadata=_j("diff_ids"))


@dataclass
class History:
    created: str | None = None
    created_by: str | None = field(default=None, metadata=_j("created_by"))
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = field(default=None, metadata=_j("empty_layer"))


@dataclass
class ImageConfig:
    """An OCI image config or Docker's image JSON (a superset: the extra keys are ignored)."""

    architecture: str
    os: str
    rootfs: RootFS
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = field(default=None, metadata=_j("os.version"))
    os_features: list[str] | None = field(default=None, metadata=_j("os.features"))
    config: ContainerConfig | None = None
    history: list[History] | None = None

    @property
    def platform(self) -> Platform:
        return Platform(architecture=self.architecture, os=self.os, variant=self.variant,
                        os_version=self.os_version)


def _load(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # also too deep, or too many digits
        raise DecodeError("", f"{what} is not valid JSON: {exc}") from None


def _check_descriptor(desc: Descriptor, path: str) -> None:
    try:
        parse_digest(desc.digest)
    except InvalidDigest as exc:
        raise DecodeError(f"{path}.digest", str(exc)) from None
    if desc.size < 0:
        raise DecodeError(f"{path}.size", f"negative size {desc.size}")


def parse_manifest(data: bytes, media_type: str | None = None) -> Manifest:
    """Decode an image manifest; ``media_type`` is what the transport said it is."""
    manifest = decode(Manifest, _load(data, "manifest"))
    kind = manifest.media_type or media_type or OCI_MANIFEST
    if kind not in MANIFEST_TYPES:
        raise DecodeError("mediaType", f"{kind!r} is not an image manifest")
    if manifest.schema_version != 2:
        raise DecodeError("schemaVersion", f"unsupported schema version "
                          f"{manifest.schema_version} (2 is)")
    _check_descriptor(manifest.config, "config")
    for i, layer in enumerate(manifest.layers):
        _check_descriptor(layer, f"layers[{i}]")
    return manifest


def parse_index(data: bytes, media_type: str | None = None) -> Index:
    index = decode(Index, _load(data, "index"))
    kind = index.media_type or media_type or OCI_INDEX
    if kind not in INDEX_TYPES:
        raise DecodeError("mediaType", f"{kind!r} is not an image index")
    if index.schema_version != 2:
        raise DecodeError("schemaVersion", f"unsupported schema version "
                          f"{index.schema_version} (2 is)")
    for i, desc in enumerate(index.manifests):
        _check_descriptor(desc, f"manifests[{i}]")
    return index


def parse_config(data: bytes) -> ImageConfig:
    config = decode(ImageConfig, _load(data, "image config"))
    for i, diff_id in enumerate(config.rootfs.diff_ids):
        try:
            parse_digest(diff_id)
        except InvalidDigest as exc:
            raise DecodeError(f"rootfs.diff_ids[{i}]", str(exc)) from None
    return config


def sniff_media_type(data: bytes) -> str:
    """The media type a manifest-like document declares, or guessed from its shape."""
    doc = _load(data, "manifest")
    if not isinstance(doc, dict):
        raise DecodeError("", "a manifest must be a JSON object")
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def to_json_bytes(obj: Any) -> bytes:
    """Canonical-enough JSON for documents sampan writes itself (stable digests)."""
    return json.dumps(encode(obj), separators=(",", ":"), ensure_ascii=False).encode()


# Platforms --------------------------------------------------------------------------------

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386",
                 "i686": "386", "armhf": "arm", "armel": "arm"}


def normalize_platform(platform: Platform) -> Platform:
    """containerd's normalisation: aliases to GOARCH names, default variants dropped."""
    os_name = platform.os.lower()
    arch = _ARCH_ALIASES.get(platform.architecture.lower(), platform.architecture.lower())
    variant = (platform.variant or "").lower()
    if platform.architecture.lower() == "armhf":
        variant = variant or "v7"
    elif platform.architecture.lower() == "armel":
        variant = variant or "v6"
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""
    elif arch == "arm" and variant in ("", "7"):
        variant = "v7"
    elif arch == "arm" and variant in ("5", "6", "8"):
        variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(architecture=arch, os=os_name, variant=variant or None,
                    os_version=platform.os_version)


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` as `--platform` takes it (an arch alone means linux)."""
    parts = text.strip().split("/")
    if not text.strip() or len(parts) > 3 or any(not p for p in parts):
        raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
    if len(parts) == 1:
        parts = ["linux", parts[0]]
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", "".join(parts)):
        raise ValueError(f"invalid platform {text!r}: unexpected characters")
    return normalize_platform(Platform(os=parts[0], architecture=parts[1],
                                       variant=parts[2] if len(parts) == 3 else None))


def host_platform() -> Platform:
    machine = os.uname().machine.lower()
    variant = None
    if machine.startswith("armv"):
        variant, machine = machine[3:5].rstrip("l"), "arm"
    return normalize_platform(Platform(os="linux", architecture=machine, variant=variant))


def platform_matches(wanted: Platform, candidate: Platform) -> bool:
    want, have = normalize_platform(wanted), normalize_platform(candidate)
    if (want.os, want.architecture) != (have.os, have.architecture):
        return False
    return want.variant is None or want.variant == have.variant


def select_manifest(index: Index, wanted: Platform | None = None) -> Descriptor:
    """The manifest of ``index`` for ``wanted`` (default: the host), as Docker picks it."""
    platform = wanted or host_platform()
    for desc in index.manifests:
        if desc.media_type in MANIFEST_TYPES and desc.platform is not None \
                and platform_matches(platform, desc.platform):
            return desc
    raise LookupError(f"no matching manifest for {normalize_platform(platform)} in the "
                      "manifest list entries")
