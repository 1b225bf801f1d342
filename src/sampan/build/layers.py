"""A build's images and layers in the image store.

A step's result is a ``State``: the image config document (docker's image JSON) and the
layers under it. Its ID is the digest of the document, as an image ID is, so a step's
cache key can name its parent exactly. States are registered as images only when they must
be: a RUN needs a container and so an image (``materialize``, undone by ``release``), and
the build's result is registered and named at the end.

A layer is made from an active snapshot: its changes are written as a tar into the content
store (mtimes clamped to SOURCE_DATE_EPOCH when that is set, so the same inputs give the
same diff ID) and the snapshot is committed under its chain ID.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import secrets
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from ..archive.unpack import lower_lookup
from ..archive.writer import ENTRY, LayerEntry, write_layer
from ..content import BlobNotFound
from ..images.reference import Reference
from ..images.store import Image, ImageStore
from ..oci.image import OCI_CONFIG, OCI_LAYER, Descriptor, chain_ids, digest_of
from ..snapshots import SnapshotExists

_CHUNK = 1 << 20
# What the runtime adds to a RUN container's root for its mounts: docker keeps these in the
# container's init layer, out of the committed layer.
_RUNTIME_PATHS = ("dev", "proc", "sys")
_RUNTIME_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab", ".dockerenv")


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    blob_digest: str
    media_type: str
    blob_size: int


@dataclass
class State:
    """An image being built: its config document and its layers."""

    document: dict[str, Any]
    layers: list[Layer] = field(default_factory=list)

    @property
    def id(self) -> str:
        return digest_of(self.encoded())

    def encoded(self) -> bytes:
        return json.dumps(self.document, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def config(self) -> dict[str, Any]:
        return self.document.setdefault("config", {})

    @property
    def top(self) -> str | None:
        return self.layers[-1].chain_id if self.layers else None

    def child(self) -> State:
        return State(copy.deepcopy(self.document), list(self.layers))

    def to_json(self) -> dict[str, Any]:
        return {"document": self.document, "layers": [vars(la) for la in self.layers]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        return cls(data["document"], [Layer(**la) for la in data["layers"]])


def from_image(image: Image) -> State:
    return State(copy.deepcopy(image.raw_config), [
        Layer(la.chain_id, la.diff_id, la.blob_digest, la.media_type, la.blob_size)
        for la in image.layers])


def empty_state(architecture: str, os_name: str, variant: str | None = None) -> State:
    """``FROM scratch`` (for the build's platform)."""
    doc: dict[str, Any] = {"architecture": architecture, "os": os_name}
    if variant:
        doc["variant"] = variant
    doc.update({"config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []})
    return State(doc)


def usable(store: ImageStore, state: State) -> bool:
    """Whether every layer of ``state`` is still in the store (a cached state may not be)."""
    return all(store.snapshots.exists(la.chain_id) and store.content.has(la.blob_digest)
               for la in state.layers)


# Layers -------------------------------------------------------------------------------------

def _runtime_made(entry: LayerEntry) -> bool:
    top = entry.rel.split("/", 1)[0]
    return top in _RUNTIME_PATHS or entry.rel in _RUNTIME_FILES


def _same_as_lower(entry: LayerEntry, lowers: list[str]) -> bool:
    found = lower_lookup(lowers, entry.rel)
    if found is None or entry.kind != ENTRY:
        return False
    below, mine = found[1], os.lstat(entry.source)
    return (below.st_mode, below.st_uid, below.st_gid) == (mine.st_mode, mine.st_uid,
                                                          mine.st_gid)


def run_entries(entries: Iterable[LayerEntry], lowers: list[str]) -> list[LayerEntry]:
    """A RUN container's changes without what the runtime made for its mounts (/dev, /proc,
    /sys, /etc/hosts...; docker keeps those in an init layer), nor the directories copied
    up only to hold them."""
    kept = [e for e in entries if not _runtime_made(e)]
    holders = {posixpath.dirname(f) for f in _RUNTIME_FILES} - {""}
    return [e for e in kept if not (
        e.rel in holders and not any(o.rel.startswith(e.rel + "/") for o in kept)
        and _same_as_lower(e, lowers))]


def _clamped(source: str, out: Any, epoch: int) -> None:
    """Copy the layer tar ``source`` to ``out`` with every mtime clamped to ``epoch``."""
    with tarfile.open(source, "r:") as tin, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            member.mtime = min(int(member.mtime), epoch)
            member.pax_headers = {k: v for k, v in member.pax_headers.items()
                                  if k not in ("mtime", "atime", "ctime")}
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)


def _store_tar(store: ImageStore, entries: Iterable[LayerEntry],
               epoch: int | None) -> tuple[str, int]:
    """Write the layer of ``entries`` into the content store: (diff ID, size)."""
    with tempfile.NamedTemporaryFile(dir=os.path.join(store.root, "content"),
                                     prefix="build-layer-") as spool:
        write_layer(entries, spool)  # type: ignore[arg-type]
        spool.flush()
        with store.content.writer() as writer:
            if epoch is not None:
                _clamped(spool.name, writer, epoch)
            else:
                spool.seek(0)
                while chunk := spool.read(_CHUNK):
                    writer.write(chunk)
            diff_id = writer.commit()
            return diff_id, writer.size


def commit_snapshot(store: ImageStore, key: str, parent: State, *,
                    run: bool = False, epoch: int | None = None,
                    reapply: bool = False) -> Layer | None:
    """The changes of the active snapshot ``key`` (on ``parent``'s top) as a new layer, or
    None when nothing changed (docker then records an empty layer).

    Without ``reapply`` the snapshot itself becomes the layer's committed snapshot; with it
    (a container's snapshot, which the container owns) the tar is unpacked into a new one.
    """
    written = 0

    def counted() -> Iterator[LayerEntry]:
        nonlocal written
        entries = store.snapshots.entries(key)
        if run:
            entries = run_entries(entries, store.snapshots.lower_dirs(key))
        for entry in entries:
            written += 1
            yield entry

    diff_id, size = _store_tar(store, counted(), epoch)
    if not written:
        store.discard_unreferenced([diff_id])
        if not reapply:
            store.snapshots.remove(key)
        return None
    chain = chain_ids([*(la.diff_id for la in parent.layers), diff_id])[-1]
    layer = Layer(chain, diff_id, diff_id, OCI_LAYER, size)
    if store.snapshots.exists(chain):
        if not reapply:
            store.snapshots.remove(key)
        return layer
    if reapply:
        key = f"build-{secrets.token_hex(6)}"
        store.snapshots.prepare(key, parent.top)
        try:
            with store.content.open(diff_id) as f:
                store.snapshots.apply(key, f)
        except BaseException:
            store.snapshots.remove(key)
            raise
    try:
        store.snapshots.commit(key, chain)
    except SnapshotExists:
        store.snapshots.remove(key)
    return layer


# Images -------------------------------------------------------------------------------------

def _manifest(store: ImageStore, state: State, added: list[str]) -> str:
    data = state.encoded()
    config_digest = store.put_blob(data, added)
    return store.put_manifest(
        Descriptor(media_type=OCI_CONFIG, digest=config_digest, size=len(data)),
        [Descriptor(media_type=la.media_type, digest=la.blob_digest, size=la.blob_size)
         for la in state.layers], added)


def register(store: ImageStore, state: State, tags: Iterable[Reference] = ()) -> Image:
    """Record ``state`` as an image of the store, named ``tags``."""
    added: list[str] = []
    try:
        image, _ = store.register(_manifest(store, state, added), tags=list(tags))
        return image
    finally:
        store.discard_unreferenced(added)


def materialize(store: ImageStore, state: State) -> tuple[str, bool]:
    """``state`` as an image a container can use: (image ID, whether it was made here)."""
    if store.db.image(state.id) is not None:
        return state.id, False
    return register(store, state).id, True


def release(store: ImageStore, image_id: str) -> None:
    """Forget an image ``materialize`` made, keeping its layers for the cache."""
    record = store.db.image(image_id)
    if record is None or store.db.refs(image_id) or store.db.users(image_id):
        return
    layer_blobs = {la.blob_digest for la in store.db.layers(image_id)}
    _, blobs = store.db.delete_image(image_id)
    for digest in blobs:
        if digest not in layer_blobs:
            with suppress(BlobNotFound):
                store.content.delete(digest)
