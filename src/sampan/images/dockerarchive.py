"""`docker load` and `docker save`: the docker-archive tar format.

An archive holds ``manifest.json`` (per image: the config file, its RepoTags and the layer
tars in order), the config as ``<id>.json`` and each layer as ``<layer>/layer.tar`` (plain or
compressed, possibly a symlink to a shared copy), or, from Docker 25 on, the same files as
an OCI layout under ``blobs/``. The archive is read as one stream (gzip'd too): files go
straight into the content store, and the images are registered from there; the manifests
sampan keeps for them are OCI manifests it writes itself, as Docker's containerd store does.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..archive import ArchiveError
from ..archive.compression import decompressed, detect
from ..archive.unpack import ForwardReader, clean_name
from ..content import ContentError
from ..oci.image import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
)
from .layout import import_index
from .reference import Reference, parse_any, parse_normalized
from .store import ImageError, ImageNotFound, ImageStore, image_reference, parse_time

_METADATA = {"manifest.json", "repositories", "index.json", "oci-layout"}
_LEGACY_LAYER_FILES = {"json", "VERSION"}
_METADATA_LIMIT = 16 << 20
_LAYER_TYPES = {"": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


@dataclass
class _Archive:
    files: dict[str, bytes] = field(default_factory=dict)  # small metadata files
    blobs: dict[str, tuple[str, int]] = field(default_factory=dict)  # path → (digest, size)
    links: dict[str, str] = field(default_factory=dict)  # path → path it links to
    added: list[str] = field(default_factory=list)  # blobs this load brought in

    def blob(self, path: str, what: str) -> tuple[str, int]:
        seen = set()
        name = clean_name(path)
        while name in self.links and name not in seen:
            seen.add(name)
            name = self.links[name]
        if name not in self.blobs:
            raise ImageError(f"invalid image archive: {what} {path!r} is not in the archive")
        return self.blobs[name]


def _read_archive(store: ImageStore, stream: BinaryIO) -> _Archive:
    archive = _Archive()
    with decompressed(stream) as plain, \
            tarfile.open(fileobj=ForwardReader(plain), mode="r:") as tar:  # type: ignore[call-overload]
        for member in tar:
            name = clean_name(member.name)
            if member.issym():
                target = posixpath.normpath(posixpath.join(posixpath.dirname(name),
                                                           member.linkname))
                archive.links[name] = clean_name(target)
            elif member.islnk():
                archive.links[name] = clean_name(member.linkname)
            elif member.isreg():
                source = tar.extractfile(member)
                assert source is not None
                if name in _METADATA or posixpath.basename(name) in _LEGACY_LAYER_FILES:
                    if member.size > _METADATA_LIMIT:
                        raise ImageError(f"invalid image archive: {name} is too large")
                    archive.files[name] = source.read()
                    continue
                with store.content.writer() as writer:
                    while chunk := source.read(1 << 20):
                        writer.write(chunk)
                    existed = store.content.has(writer.digest)
                    digest = writer.commit()
                if not existed:
                    archive.added.append(digest)
                archive.blobs[name] = (digest, writer.size)
    return archive


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageError(f"invalid image archive: {what} is not valid JSON: {exc}") from None


def _register_entry(store: ImageStore, archive: _Archive, entry: Any,
                    index: int) -> list[str]:
    where = f"manifest.json[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or \
            not isinstance(entry.get("Layers"), list):
        raise ImageError(f"invalid image archive: {where} needs Config and Layers")
    config_digest, config_size = archive.blob(entry["Config"], "config")
    layers = []
    for path in entry["Layers"]:
        if not isinstance(path, str):
            raise ImageError(f"invalid image archive: {where}.Layers holds a non-string")
        digest, size = archive.blob(path, "layer")
        with store.content.open(digest) as f:
            head = f.read(8)
        try:
            codec = detect(head)
        except ArchiveError as exc:
            raise ImageError(f"layer {path}: {exc}") from None
        layers.append(Descriptor(media_type=_LAYER_TYPES[codec], digest=digest, size=size))
    manifest_digest = store.put_manifest(
        Descriptor(media_type=OCI_CONFIG, digest=config_digest, size=config_size), layers,
        archive.added)
    tags = [image_reference(t) for t in entry.get("RepoTags") or []]
    image, displaced = store.register(manifest_digest, tags=tags)
    messages = []
    for name, old in displaced:
        if not store.db.refs(old):
            messages.append(f"The image {parse_normalized(name).familiar()} already exists, "
                            f"renaming the old one with ID {old} to empty string")
    if tags:
        messages.extend(f"Loaded image: {t.familiar()}" for t in tags)
    else:
        messages.append(f"Loaded image ID: {image.id}")
    return messages


def load(store: ImageStore, stream: BinaryIO) -> list[str]:
    """Load every image of a `docker save` archive; Docker's messages, one per line."""
    archive = _Archive()
    try:
        archive = _read_archive(store, stream)
        if "manifest.json" in archive.files:
            entries = _json(archive.files["manifest.json"], "manifest.json")
            if not isinstance(entries, list):
                raise ImageError("invalid image archive: manifest.json is not a list")
            messages = []
            for i, entry in enumerate(entries):
                messages.extend(_register_entry(store, archive, entry, i))
            return messages
        if "index.json" in archive.files:
            def fetch(desc: Descriptor, what: str) -> None:
                digest, size = archive.blob("blobs/" + desc.digest.replace(":", "/"), what)
                if (digest, size) != (desc.digest, desc.size):
                    raise ImageError(f"{what} blob {desc.digest}: the archive's copy hashes to "
                                     f"{digest} ({size} bytes)")

            messages = []
            for image, tags in import_index(store, archive.files["index.json"], fetch):
                messages.extend([f"Loaded image: {t.familiar()}" for t in tags]
                                or [f"Loaded image ID: {image.id}"])
            return messages
        raise ImageError("invalid image archive: no manifest.json (nor index.json) in it")
    except (ArchiveError, ContentError) as exc:
        raise ImageError(f"invalid image archive: {exc}") from None
    finally:
        store.discard_unreferenced(archive.added)  # a failed load leaves the store as it was


def _selection(store: ImageStore, names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(image ID, tags to save with it) in order, as Docker's save picks them."""
    chosen: dict[str, list[str]] = {}
    for name in names:
        parsed = parse_any(name)
        if isinstance(parsed, Reference) and not parsed.tag and not parsed.digest:
            # A bare repository name saves every tag of that repository.
            hits = [(n, i) for n, i, kind in store.db.refs() if kind == "tag"
                    and parse_normalized(n).name == parsed.name]
            if not hits:
                raise ImageNotFound(name)
            for n, image_id in hits:
                chosen.setdefault(image_id, []).append(parse_normalized(n).familiar())
            continue
        image_id = store.resolve(name)
        tags = chosen.setdefault(image_id, [])
        if isinstance(parsed, Reference) and parsed.tag:
            tags.append(parsed.familiar())
    return [(image_id, list(dict.fromkeys(tags))) for image_id, tags in chosen.items()]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def save(store: ImageStore, names: Sequence[str], out: BinaryIO) -> None:
    """Write the images ``names`` as a docker-archive tar (what `docker load` reads)."""
    selection = _selection(store, names)
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for image_id, tags in selection:
            image = store.get(image_id)
            created = max(0, parse_time(image.config.created))
            config_name = image_id.split(":", 1)[1] + ".json"
            _add_bytes(tar, config_name, store.content.read(image_id), created)
            paths, parent = [], ""
            for layer in image.layers:
                v1 = layer.chain_id.split(":", 1)[1]
                if v1 not in written:
                    written.add(v1)
                    info = tarfile.TarInfo(v1)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, created
                    tar.addfile(info)
                    _add_bytes(tar, f"{v1}/VERSION", b"1.0", created)
                    v1_json = {"id": v1, **({"parent": parent} if parent else {})}
                    _add_bytes(tar, f"{v1}/json", json.dumps(v1_json).encode(), created)
                    info = tarfile.TarInfo(f"{v1}/layer.tar")
                    info.size, info.mode, info.mtime = layer.tar_size, 0o644, created
                    with store.content.open(layer.blob_digest) as blob, \
                            decompressed(blob) as plain:
                        tar.addfile(info, plain)
                paths.append(f"{v1}/layer.tar")
                parent = v1
            manifest.append({"Config": config_name, "RepoTags": tags or None, "Layers": paths})
            for tag in tags:
                repo, _, label = tag.rpartition(":")
                repositories.setdefault(repo, {})[label] = parent
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode(), 0)
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories).encode(), 0)
