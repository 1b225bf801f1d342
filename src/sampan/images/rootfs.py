"""`docker import` and `docker export`: a root filesystem tarball in as a one-layer image, a
container's filesystem out as one.

An import keeps the tarball, decompressed, as the image's only layer (so its diff ID is the
digest of the tar, as Docker's is), writes the config Docker's ImageImport writes (the
``--change`` instructions applied to an empty config, the message as comment and history)
and registers the image through ``ImageStore.register``: a tarball that tries to write
outside its root is refused there and leaves the store as it was. An export is the tar of
what the container sees: its image's layers and its own changes, through a read-only mount.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from typing import BinaryIO

from ..archive import ArchiveError
from ..archive.compression import decompressed
from ..archive.writer import tree_entries, write_layer
from ..content import ContentError
from ..oci.decode import encode
from ..oci.image import (
    OCI_CONFIG,
    OCI_LAYER,
    Descriptor,
    Platform,
    host_platform,
    parse_platform,
)
from ..snapshots import mount_all, unmount_all
from .instructions import ChangeError, apply_changes
from .store import Image, ImageError, ImageStore, docker_container_config, image_reference, rfc3339

_CHUNK = 1 << 20


def _platform(platform: Platform | str | None) -> Platform:
    if platform is None:
        return host_platform()
    if isinstance(platform, Platform):
        return platform
    try:
        return parse_platform(platform)
    except ValueError as exc:
        raise ImageError(str(exc)) from None


def import_image(store: ImageStore, stream: BinaryIO, reference: str | None = None, *,
                 changes: Sequence[str] = (), message: str = "", source: str = "-",
                 platform: Platform | str | None = None) -> Image:
    """Docker's `import`: the tarball ``stream`` (plain, gzip, zstd, bzip2 or xz) as a
    one-layer image, named ``reference`` if given, its config made by the Dockerfile
    lines ``changes``.

    ``source`` is what the history names when there is no ``message`` ("Imported from -").
    """
    tags = [image_reference(reference)] if reference else []
    try:
        config = apply_changes(None, changes)
    except ChangeError as exc:
        raise ImageError(str(exc)) from None
    chosen = _platform(platform)
    added: list[str] = []
    try:
        with decompressed(stream, tarball=True) as plain, store.content.writer() as writer:
            while chunk := plain.read(_CHUNK):
                writer.write(chunk)
            existed = store.content.has(writer.digest)
            diff_id = writer.commit()
            size = writer.size
        if not existed:
            added.append(diff_id)
        created = rfc3339(time.time())
        comment = message or f"Imported from {source}"
        document = {
            "architecture": chosen.architecture,
            "comment": comment,
            "config": docker_container_config(encode(config)),
            "created": created,
            "history": [{"created": created, "comment": comment}],
            "os": chosen.os,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            **({"variant": chosen.variant} if chosen.variant else {}),
        }
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        config_digest = store.put_blob(data, added)
        manifest = store.put_manifest(
            Descriptor(media_type=OCI_CONFIG, digest=config_digest, size=len(data)),
            [Descriptor(media_type=OCI_LAYER, digest=diff_id, size=size)], added)
        image, _ = store.register(manifest, tags=tags)
        return image
    except (ArchiveError, ContentError) as exc:
        raise ImageError(f"invalid tarball: {exc}") from None
    finally:
        store.discard_unreferenced(added)  # a failed import leaves the store as it was


def export_tree(root: str, out: BinaryIO) -> tuple[str, int]:
    """The tar of everything below ``root`` (a container's mounted root filesystem) into
    ``out``, as Docker's export writes it; the tar's digest and length."""
    return write_layer(tree_entries(root), out)


def export_container(store: ImageStore, key: str, out: BinaryIO) -> tuple[str, int]:
    """Docker's `export` of the container whose root filesystem is the snapshot ``key``:
    read through a private read-only mount, so the container may keep running."""
    target = tempfile.mkdtemp(prefix="sampan-export-")
    try:
        mount_all(store.snapshots.read_mounts(key), target)
        try:
            return export_tree(target, out)
        finally:
            unmount_all(target)
    finally:
        if not os.path.ismount(target):
            shutil.rmtree(target, ignore_errors=True)
