"""OCI image layouts (a directory with ``oci-layout``, ``index.json`` and ``blobs/``): import
what skopeo, umoci and buildah write, and export what they read.

An index entry names its image with ``org.opencontainers.image.ref.name`` (a tag such as
``latest``, as skopeo writes ``oci:DIR:latest``) and, from containerd and Docker, with the
full name in ``io.containerd.image.name``; an entry that is itself an index (a multi-platform
image) is resolved to the manifest of the wanted platform.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

from ..content import ContentError
from ..oci.decode import DecodeError
from ..oci.image import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    Descriptor,
    Index,
    Platform,
    parse_digest,
    parse_index,
    parse_manifest,
    select_manifest,
    to_json_bytes,
)
from .reference import InvalidReference, Reference, parse_any
from .store import Image, ImageError, ImageStore, image_reference

LAYOUT_VERSION = "1.0.0"
# Ensures the blob of a descriptor is in the content store, verified; raises ImageError.
Fetch = Callable[[Descriptor, str], None]


def _names(desc: Descriptor, name: str | None) -> list[Reference]:
    annotations = desc.annotations or {}
    full = annotations.get(ANNOTATION_IMAGE_NAME)
    tag = annotations.get(ANNOTATION_REF_NAME)
    try:
        if full:
            return [image_reference(full)]
        if tag and name:
            return [image_reference(name).with_tag(tag)]
        if tag and ("/" in tag or ":" in tag):  # some tools put a full name here
            return [image_reference(tag)]
    except InvalidReference as exc:
        raise ImageError(f"image name {full or tag!r} in the layout: {exc}") from None
    return []


def import_index(store: ImageStore, index_json: bytes, fetch: Fetch, *, name: str | None = None,
                 ref_name: str | None = None, platform: Platform | None = None,
                 ) -> list[tuple[Image, list[Reference]]]:
    """Register the images of a layout's ``index.json`` (blobs supplied by ``fetch``)."""
    try:
        index = parse_index(index_json)
    except DecodeError as exc:
        raise ImageError(f"index.json: {exc}") from None
    chosen = [d for d in index.manifests if ref_name is None
              or (d.annotations or {}).get(ANNOTATION_REF_NAME) == ref_name]
    if not chosen:
        raise ImageError(f"no image named {ref_name!r} in the layout" if ref_name
                         else "the layout's index.json lists no image")
    loaded = []
    for desc in chosen:
        index_digest = None
        target = desc
        if desc.media_type in INDEX_TYPES:
            fetch(desc, "index")
            try:
                target = select_manifest(parse_index(store.content.read(desc.digest),
                                                     desc.media_type), platform)
            except (DecodeError, LookupError) as exc:
                raise ImageError(f"index {desc.digest}: {exc}") from None
            index_digest = desc.digest
        elif desc.media_type not in MANIFEST_TYPES:
            raise ImageError(f"index.json: {desc.media_type!r} ({desc.digest}) is not an image")
        fetch(target, "manifest")
        try:
            manifest = parse_manifest(store.content.read(target.digest), target.media_type)
        except DecodeError as exc:
            raise ImageError(f"manifest {target.digest}: {exc}") from None
        fetch(manifest.config, "config")
        for i, layer in enumerate(manifest.layers):
            fetch(layer, f"layer {i}")
        tags = _names(desc, name)
        image, _ = store.register(target.digest, tags=tags, index_digest=index_digest)
        loaded.append((image, tags))
    return loaded


def import_layout(store: ImageStore, path: str, *, name: str | None = None,
                  ref_name: str | None = None, platform: Platform | None = None,
                  ) -> list[tuple[Image, list[Reference]]]:
    """Import the images of the OCI layout at ``path``; ``name`` is the repository that
    a bare tag in ``org.opencontainers.image.ref.name`` belongs to."""
    try:
        with open(os.path.join(path, "oci-layout"), "rb") as f:
            version = json.loads(f.read()).get("imageLayoutVersion")
        with open(os.path.join(path, "index.json"), "rb") as f:
            index_json = f.read()
    except FileNotFoundError as exc:
        raise ImageError(f"{path} is not an OCI image layout: {exc.filename} is missing") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise ImageError(f"{path}: oci-layout is not a valid layout marker") from None
    if version != LAYOUT_VERSION:
        raise ImageError(f"{path}: unsupported image layout version {version!r} "
                         f"({LAYOUT_VERSION} is)")
    added: list[str] = []

    def fetch(desc: Descriptor, what: str) -> None:
        algorithm, encoded = parse_digest(desc.digest)
        blob = os.path.join(path, "blobs", algorithm, encoded)
        if store.content.has(desc.digest):
            return
        try:
            with open(blob, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size != desc.size:
                    raise ImageError(f"{path}: {what} blob {desc.digest} is {size} bytes, its "
                                     f"descriptor says {desc.size}")
                store.content.ingest(f, desc.digest, desc.size, resume=False)
        except FileNotFoundError:
            raise ImageError(f"{path}: {what} blob {desc.digest} is missing") from None
        except ContentError as exc:
            store.content.abort(desc.digest)
            raise ImageError(f"{path}: {what} blob: {exc}") from None
        added.append(desc.digest)

    try:
        return import_index(store, index_json, fetch, name=name, ref_name=ref_name,
                            platform=platform)
    finally:
        store.discard_unreferenced(added)  # a failed import leaves the store as it was


def _copy_blob(store: ImageStore, digest: str, path: str) -> None:
    algorithm, encoded = parse_digest(digest)
    target_dir = os.path.join(path, "blobs", algorithm)
    target = os.path.join(target_dir, encoded)
    if os.path.exists(target):
        return
    os.makedirs(target_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out, store.content.open(digest) as source:
            shutil.copyfileobj(source, out, 1 << 20)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_file(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def export_layout(store: ImageStore, names: Sequence[str], path: str) -> None:
    """Write the images ``names`` into the OCI layout at ``path`` (made, or added to)."""
    os.makedirs(path, exist_ok=True)
    index = Index(schema_version=2, manifests=[])
    if os.path.exists(os.path.join(path, "index.json")):
        with open(os.path.join(path, "index.json"), "rb") as f:
            index = parse_index(f.read())
    entries = []
    for name in names:
        image = store.get(name)
        parsed = parse_any(name)
        ref = parsed if isinstance(parsed, Reference) else None
        if ref is not None and not ref.tag and not ref.digest:
            ref = ref.with_tag("latest")
        for digest in (image.record.manifest_digest, image.id,
                       *(la.blob_digest for la in image.layers)):
            _copy_blob(store, digest, path)
        annotations = None
        if ref is not None and ref.tag:
            annotations = {ANNOTATION_IMAGE_NAME: str(ref), ANNOTATION_REF_NAME: ref.tag}
        entries.append(Descriptor(
            media_type=image.record.manifest_media_type, digest=image.record.manifest_digest,
            size=store.content.size(image.record.manifest_digest), annotations=annotations,
            platform=Platform(architecture=image.config.architecture, os=image.config.os,
                              variant=image.config.variant)))
    replaced = {(d.annotations or {}).get(ANNOTATION_REF_NAME) for d in entries} - {None}
    index.manifests = [d for d in index.manifests
                       if (d.annotations or {}).get(ANNOTATION_REF_NAME) not in replaced
                       ] + entries
    index.media_type = index.media_type or OCI_INDEX
    _write_file(os.path.join(path, "oci-layout"),
                json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
    _write_file(os.path.join(path, "index.json"), to_json_bytes(index))
