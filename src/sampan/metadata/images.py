"""The image database: image records, references, layer chains with reference counts.

An image is its config digest (Docker's image ID). Its layers are chain IDs shared between
images; ``layers.refcount`` counts the images using each chain, so removing an image knows
which snapshots no image needs any more. Every method that writes is one transaction.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from . import Database


@dataclass(frozen=True)
class ImageRecord:
    id: str  # config digest
    manifest_digest: str
    manifest_media_type: str
    index_digest: str | None  # the index (manifest list) it was selected from, if any
    created: str | None  # from the config
    size: int  # sum of its layers' content sizes
    top_layer: str | None  # chain ID of its last layer
    last_tag_time: float | None
    added: float


@dataclass(frozen=True)
class ImageLayer:
    position: int
    chain_id: str
    diff_id: str
    blob_digest: str
    media_type: str
    blob_size: int
    size: int  # content bytes of the layer (Docker's layer Size)
    tar_size: int  # length of the uncompressed tar


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS images (
           id TEXT PRIMARY KEY,
           manifest_digest TEXT NOT NULL,
           manifest_media_type TEXT NOT NULL,
           index_digest TEXT,
           created TEXT,
           size INTEGER NOT NULL,
           top_layer TEXT REFERENCES layers(chain_id),
           last_tag_time REAL,
           added REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS layers (
           chain_id TEXT PRIMARY KEY,
           diff_id TEXT NOT NULL,
           parent TEXT REFERENCES layers(chain_id),
           size INTEGER NOT NULL,
           tar_size INTEGER NOT NULL,
           refcount INTEGER NOT NULL CHECK (refcount >= 0))""",
    """CREATE TABLE IF NOT EXISTS image_layers (
           image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
           position INTEGER NOT NULL,
           chain_id TEXT NOT NULL REFERENCES layers(chain_id),
           blob_digest TEXT NOT NULL,
           media_type TEXT NOT NULL,
           blob_size INTEGER NOT NULL,
           PRIMARY KEY (image_id, position))""",
    """CREATE TABLE IF NOT EXISTS image_blobs (
           image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
           digest TEXT NOT NULL,
           PRIMARY KEY (image_id, digest))""",
    "CREATE INDEX IF NOT EXISTS image_blobs_digest ON image_blobs(digest)",
    """CREATE TABLE IF NOT EXISTS refs (
           name TEXT PRIMARY KEY,
           image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
           kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')))""",
    "CREATE INDEX IF NOT EXISTS refs_image ON refs(image_id)",
    """CREATE TABLE IF NOT EXISTS image_users (
           image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
           holder TEXT NOT NULL,
           PRIMARY KEY (image_id, holder))""",
)


def _image(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(**{key: row[key] for key in row.keys()})  # noqa: SIM118


class ImageDB(Database):
    SCHEMA = SCHEMA

    # Reading ------------------------------------------------------------------------------

    def image(self, image_id: str) -> ImageRecord | None:
        rows = self.query("SELECT * FROM images WHERE id = ?", (image_id,))
        return _image(rows[0]) if rows else None

    def images(self) -> list[ImageRecord]:
        return [_image(r) for r in self.query("SELECT * FROM images ORDER BY added")]

    def ids_with_prefix(self, prefix: str) -> list[str]:
        return [r["id"] for r in self.query(
            "SELECT id FROM images WHERE substr(id, 1, ?) = ?", (len(prefix), prefix))]

    def ref_target(self, name: str) -> str | None:
        rows = self.query("SELECT image_id FROM refs WHERE name = ?", (name,))
        return rows[0]["image_id"] if rows else None

    def refs(self, image_id: str | None = None) -> list[tuple[str, str, str]]:
        """(name, image ID, kind) of every reference, or of one image's, sorted by name."""
        if image_id is None:
            rows = self.query("SELECT name, image_id, kind FROM refs ORDER BY name")
        else:
            rows = self.query("SELECT name, image_id, kind FROM refs WHERE image_id = ? "
                              "ORDER BY name", (image_id,))
        return [(r["name"], r["image_id"], r["kind"]) for r in rows]

    def layers(self, image_id: str) -> list[ImageLayer]:
        rows = self.query(
            "SELECT il.position, il.chain_id, l.diff_id, il.blob_digest, il.media_type, "
            "il.blob_size, l.size, l.tar_size FROM image_layers il "
            "JOIN layers l ON l.chain_id = il.chain_id WHERE il.image_id = ? "
            "ORDER BY il.position", (image_id,))
        return [ImageLayer(**{key: r[key] for key in r.keys()}) for r in rows]  # noqa: SIM118

    def layer_size(self, chain_id: str) -> tuple[int, int] | None:
        """(content size, tar size) of a known layer."""
        rows = self.query("SELECT size, tar_size FROM layers WHERE chain_id = ?", (chain_id,))
        return (rows[0]["size"], rows[0]["tar_size"]) if rows else None

    def chains(self) -> set[str]:
        return {r["chain_id"] for r in self.query("SELECT chain_id FROM layers")}

    def blobs(self) -> set[str]:
        return {r["digest"] for r in self.query("SELECT DISTINCT digest FROM image_blobs")}

    def users(self, image_id: str) -> list[str]:
        return [r["holder"] for r in self.query(
            "SELECT holder FROM image_users WHERE image_id = ? ORDER BY holder", (image_id,))]

    # Writing ------------------------------------------------------------------------------

    def add_image(self, record: ImageRecord, layers: list[ImageLayer], blobs: list[str],
                  refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Record an image (unless known) and point ``refs`` (name, kind) at it.

        Returns (name, previous image ID) for every reference taken from another image.
        """
        with self.transaction() as db:
            known = db.execute("SELECT 1 FROM images WHERE id = ?", (record.id,)).fetchone()
            if not known:
                parent = None
                for layer in layers:
                    db.execute(
                        "INSERT INTO layers (chain_id, diff_id, parent, size, tar_size, refcount)"
                        " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT(chain_id) DO UPDATE SET "
                        "refcount = refcount + 1",
                        (layer.chain_id, layer.diff_id, parent, layer.size, layer.tar_size))
                    parent = layer.chain_id
                db.execute("INSERT INTO images (id, manifest_digest, manifest_media_type, "
                           "index_digest, created, size, top_layer, last_tag_time, added) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (record.id, record.manifest_digest, record.manifest_media_type,
                            record.index_digest, record.created, record.size, record.top_layer,
                            None, record.added))
                db.executemany("INSERT INTO image_layers (image_id, position, chain_id, "
                               "blob_digest, media_type, blob_size) VALUES (?, ?, ?, ?, ?, ?)",
                               [(record.id, la.position, la.chain_id, la.blob_digest,
                                 la.media_type, la.blob_size) for la in layers])
            db.executemany("INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?, ?)",
                           [(record.id, digest) for digest in blobs])
            return self._point(db, record.id, refs)

    def _point(self, db: sqlite3.Connection, image_id: str,
               refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        displaced = []
        for name, kind in refs:
            row = db.execute("SELECT image_id FROM refs WHERE name = ?", (name,)).fetchone()
            if row is not None and row["image_id"] != image_id:
                displaced.append((name, row["image_id"]))
            db.execute("INSERT INTO refs (name, image_id, kind) VALUES (?, ?, ?) "
                       "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, "
                       "kind = excluded.kind", (name, image_id, kind))
        if any(kind == "tag" for _, kind in refs):
            db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?",
                       (time.time(), image_id))
        return displaced

    def set_refs(self, image_id: str, refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        with self.transaction() as db:
            return self._point(db, image_id, refs)

    def delete_refs(self, names: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM refs WHERE name = ?", [(n,) for n in names])

    def add_user(self, image_id: str, holder: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO image_users (image_id, holder) VALUES (?, ?)",
                       (image_id, holder))

    def remove_user(self, image_id: str, holder: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM image_users WHERE image_id = ? AND holder = ?",
                       (image_id, holder))

    def delete_image(self, image_id: str) -> tuple[list[str], list[str]]:
        """Forget an image: (chain IDs no image uses any more, top first; blobs likewise)."""
        with self.transaction() as db:
            chains = [r["chain_id"] for r in db.execute(
                "SELECT chain_id FROM image_layers WHERE image_id = ? ORDER BY position DESC",
                (image_id,))]
            blobs = [r["digest"] for r in db.execute(
                "SELECT digest FROM image_blobs WHERE image_id = ?", (image_id,))]
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
            freed = []
            for chain in chains:
                db.execute("UPDATE layers SET refcount = refcount - 1 WHERE chain_id = ?",
                           (chain,))
                row = db.execute("SELECT refcount FROM layers WHERE chain_id = ?",
                                 (chain,)).fetchone()
                if row["refcount"] == 0:
                    db.execute("DELETE FROM layers WHERE chain_id = ?", (chain,))
                    freed.append(chain)
            orphans = [d for d in blobs if not db.execute(
                "SELECT 1 FROM image_blobs WHERE digest = ? LIMIT 1", (d,)).fetchone()]
            return freed, orphans
