"""The databases: sqlite's own integrity checks, then what the image records say against
what is there (blobs, layer snapshots, layer reference counts, containers' pins)."""

from __future__ import annotations

import os
import secrets
import sqlite3
from contextlib import closing, suppress
from functools import partial

from ..images import ImageStore
from ..snapshots import SnapshotError
from .report import ERROR, ORPHAN, Report
from .scope import Scope
from .used import build_cache_db


def databases(scope: Scope) -> list[str]:
    paths = [scope.images.db.path, os.path.join(scope.images.snapshots.root, "metadata.db"),
             build_cache_db(scope)]
    return [p for p in paths if os.path.exists(p)]


def integrity(path: str, report: Report) -> None:
    report.count("databases")
    try:
        with closing(sqlite3.connect(path, timeout=30)) as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            problems += [f"{r[0]} row {r[1]} names a missing {r[2]}"
                         for r in conn.execute("PRAGMA foreign_key_check")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    for problem in problems[:20]:
        report.add("metadata", "integrity", ERROR, path, problem)


def unpack_again(store: ImageStore, image_id: str) -> None:
    """Unpack the missing layer snapshots of an image from its layer blobs, bottom up."""
    parent: str | None = None
    for layer in store.db.layers(image_id):
        if not store.snapshots.exists(layer.chain_id):
            key = f"extract-{secrets.token_hex(4)}-{layer.chain_id}"
            store.snapshots.prepare(key, parent)
            try:
                with store.content.open(layer.blob_digest) as f:
                    applied = store.snapshots.apply(key, f)
                if applied.diff_id != layer.diff_id:
                    raise SnapshotError(f"layer {layer.blob_digest} unpacks to diff ID "
                                        f"{applied.diff_id}, the image says {layer.diff_id}")
                store.snapshots.commit(key, layer.chain_id)
            except BaseException:
                with suppress(SnapshotError):
                    store.snapshots.remove(key)
                raise
        parent = layer.chain_id


def images(scope: Scope, report: Report) -> None:
    store = scope.images
    db = store.db
    for record in db.images():
        report.count("images")
        short = record.id[7:19]
        for digest, what in ((record.id, "config"), (record.manifest_digest, "manifest"),
                             (record.index_digest, "index")):
            if digest and not store.content.has(digest):
                report.add("metadata", "missing-blob", ERROR, record.id,
                           f"image {short}: its {what} blob {digest} is missing")
        for digest in sorted(r["digest"] for r in db.query(
                "SELECT digest FROM image_blobs WHERE image_id = ?", (record.id,))):
            if digest not in (record.id, record.manifest_digest, record.index_digest) and \
                    not store.content.has(digest):
                report.add("metadata", "missing-blob", ERROR, record.id,
                           f"image {short}: its layer blob {digest} is missing")
        layers = db.layers(record.id)
        if (layers[-1].chain_id if layers else None) != record.top_layer:
            report.add("metadata", "bad-top-layer", ERROR, record.id,
                       f"image {short}: its top layer is not its last layer")
        missing = [la for la in layers if not store.snapshots.exists(la.chain_id)]
        if missing:
            can = all(store.content.has(la.blob_digest) for la in missing)
            report.add("metadata", "missing-snapshot", ERROR, record.id,
                       f"image {short}: {len(missing)} layer snapshot(s) missing "
                       f"({missing[0].chain_id})" + ("" if can else "; their blobs too"),
                       partial(unpack_again, store, record.id) if can else None)


def layers(scope: Scope, report: Report) -> None:
    """layers.refcount is the number of images using the chain; a row no image uses is a
    leftover of a removal (deleted children first: ``parent`` is a foreign key)."""
    db = scope.images.db
    rows = {r["chain_id"]: r for r in db.query("SELECT chain_id, parent, refcount FROM layers")}
    users = {r["chain_id"]: r["n"] for r in db.query(
        "SELECT chain_id, COUNT(DISTINCT image_id) AS n FROM image_layers GROUP BY chain_id")}
    report.count("layers", len(rows))

    def depth(chain: str) -> int:
        n = 0
        parent = rows[chain]["parent"]
        while parent in rows and n < 1000:
            n += 1
            parent = rows[parent]["parent"]
        return n

    for chain in sorted(rows, key=depth, reverse=True):
        want = users.get(chain, 0)
        have = rows[chain]["refcount"]
        if want == 0:
            report.add("metadata", "orphan-layer", ORPHAN, chain,
                       "a layer record no image uses", partial(_delete_layer, scope, chain))
        elif have != want:
            report.add("metadata", "refcount", ERROR, chain,
                       f"reference count {have}, but {want} image(s) use the layer",
                       partial(_set_refcount, scope, chain, want))


def _delete_layer(scope: Scope, chain: str) -> None:
    with scope.images.db.transaction() as db:
        if not db.execute("SELECT 1 FROM image_layers WHERE chain_id = ?", (chain,)).fetchone():
            db.execute("DELETE FROM layers WHERE chain_id = ?", (chain,))


def _set_refcount(scope: Scope, chain: str, n: int) -> None:
    with scope.images.db.transaction() as db:
        db.execute("UPDATE layers SET refcount = ? WHERE chain_id = ?", (n, chain))


def pins(scope: Scope, report: Report) -> None:
    """An image's users are containers: a pin whose container is gone would keep `rmi`
    refusing for ever."""
    db = scope.images.db
    rows = db.query("SELECT image_id, holder FROM image_users ORDER BY holder")
    known = scope.container_ids()  # after the pins: a create in flight pins first
    for r in rows:
        report.count("pins")
        if r["holder"] not in known:
            report.add("metadata", "stale-pin", ORPHAN, r["holder"],
                       f"image {r['image_id'][7:19]} is marked as used by container "
                       f"{r['holder'][:12]}, which does not exist",
                       partial(_unpin, scope, r["image_id"], r["holder"]))


def _unpin(scope: Scope, image_id: str, holder: str) -> None:
    if holder not in scope.container_ids():
        scope.images.unpin(image_id, holder)


def check(scope: Scope, report: Report) -> None:
    for path in databases(scope):
        integrity(path, report)
    images(scope, report)
    layers(scope, report)
    pins(scope, report)

