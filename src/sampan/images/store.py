"""The image store: images as Docker shows them, on top of the content store, the snapshotter
and the image database.

``register`` is the one way an image comes in (load, OCI import and, later, pull all end
there): its manifest, config and layer blobs are in the content store; each layer not yet
unpacked is unpacked once into a snapshot named by its chain ID and checked against the
config's diff ID; then one transaction records the image and points its names at it. A
failure anywhere undoes what this call added, so the store is as it was.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..archive import ArchiveError
from ..archive.unpack import measure_layer
from ..content import BlobNotFound, ContentStore
from ..metadata.images import ImageDB, ImageLayer, ImageRecord
from ..oci.decode import DecodeError
from ..oci.image import (
    CONFIG_TYPES,
    LAYER_TYPES,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    chain_ids,
    digest_of,
    parse_config,
    parse_manifest,
    sniff_media_type,
    to_json_bytes,
)
from ..snapshots import Mount, SnapshotError, SnapshotExists, Snapshotter, open_snapshotter
from .reference import InvalidReference, Reference, parse_any, parse_docker_ref, parse_normalized

DEFAULT_ROOT = "/var/lib/sampan"
_ZERO_TIME = "0001-01-01T00:00:00Z"


class ImageError(Exception):
    """An image operation failed; the message says why."""


class ImageNotFound(ImageError, KeyError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")

    def __str__(self) -> str:
        return str(self.args[0])


class ImageConflict(ImageError):
    """The operation needs ``force`` (Docker's 409 conflicts)."""


@dataclass
class Image:
    record: ImageRecord
    config: ImageConfig
    raw_config: dict[str, Any]
    layers: list[ImageLayer]
    refs: list[tuple[str, str]]  # (normalized name, "tag" | "digest")

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def top_layer(self) -> str | None:
        return self.record.top_layer

    @property
    def repo_tags(self) -> list[str]:
        return [parse_normalized(n).familiar() for n, kind in self.refs if kind == "tag"]

    @property
    def repo_digests(self) -> list[str]:
        return [parse_normalized(n).familiar() for n, kind in self.refs if kind == "digest"]


def rfc3339(timestamp: float | None) -> str:
    """Go's RFC 3339 with nanoseconds, as Docker writes times (zero time for None)."""
    if timestamp is None:
        return _ZERO_TIME
    whole = int(timestamp)
    nanos = min(round((timestamp - whole) * 1e9), 999_999_999)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{text}.{nanos:09d}".rstrip("0").rstrip(".") + "Z"


def parse_time(text: str | None) -> int:
    """Unix seconds of an RFC 3339 timestamp (0 if absent or unreadable)."""
    if not text:
        return 0
    match = re.match(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.\d+)?"
                     r"(Z|z|[+-]\d{2}:\d{2})$", text.strip())
    if not match:
        return 0
    day, clock, zone = match.groups()
    try:
        parsed = datetime.strptime(f"{day}T{clock}", "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return 0
    seconds = calendar.timegm(parsed.timetuple())
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def _glob(pattern: str) -> re.Pattern[str]:
    """Go's path.Match for reference filters: ``*`` and ``?`` stop at ``/``."""
    out = []
    for char in pattern:
        out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
    return re.compile("^" + "".join(out) + "$")


class ImageStore:
    def __init__(self, root: str = DEFAULT_ROOT, snapshotter: str | None = None) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        self.content = ContentStore(os.path.join(self.root, "content"))
        self.snapshots: Snapshotter = open_snapshotter(os.path.join(self.root, "snapshots"),
                                                       snapshotter)
        self.db = ImageDB(os.path.join(self.root, "sampan.db"))
        self._holders: list[Callable[[], tuple[set[str], set[str]]]] = []

    def add_holder(self, held: Callable[[], tuple[set[str], set[str]]]) -> None:
        """Something besides images that keeps layers (the build cache's steps): ``gc``
        spares the snapshots (chain IDs) and blobs (digests) ``held()`` returns."""
        self._holders.append(held)

    def close(self) -> None:
        self.db.close()
        self.snapshots.close()

    # Lookup -------------------------------------------------------------------------------

    def resolve(self, ref_or_id: str) -> str:
        """The image ID for a name, a digest reference, a full ID or an ID prefix."""
        try:
            parsed = parse_any(ref_or_id)
        except InvalidReference:
            parsed = None
        if isinstance(parsed, str):
            if self.db.image(parsed):
                return parsed
            raise ImageNotFound(ref_or_id)
        if parsed is not None:
            name = str(parsed.with_digest(parsed.digest) if parsed.digest else
                       parsed if parsed.tag else parsed.with_tag("latest"))
            target = self.db.ref_target(name)
            if target:
                return target
        prefix = ref_or_id.removeprefix("sha256:")
        if re.fullmatch(r"[0-9a-f]+", prefix):
            matches = self.db.ids_with_prefix("sha256:" + prefix)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ImageError(f"{ref_or_id}: ambiguous image ID prefix "
                                 f"({len(matches)} images match)")
        if parsed is None:
            parse_any(ref_or_id)  # re-raise the reference error for the user
        raise ImageNotFound(ref_or_id)

    def get(self, ref_or_id: str) -> Image:
        return self._image(self.resolve(ref_or_id))

    def _image(self, image_id: str) -> Image:
        record = self.db.image(image_id)
        if record is None:
            raise ImageNotFound(image_id)
        raw = self.content.read(record.id)
        return Image(record=record, config=parse_config(raw), raw_config=json.loads(raw),
                     layers=self.db.layers(image_id),
                     refs=[(n, kind) for n, _, kind in self.db.refs(image_id)])

    def images(self) -> list[Image]:
        return [self._image(r.id) for r in self.db.images()]

    # Registering --------------------------------------------------------------------------

    def _blob(self, digest: str, what: str) -> bytes:
        try:
            return self.content.read(digest)
        except BlobNotFound:
            raise ImageError(f"{what} blob {digest} is missing from the content store") \
                from None

    def register(self, manifest_digest: str, *, tags: Sequence[Reference] = (),
                 digests: Sequence[Reference] = (), index_digest: str | None = None,
                 ) -> tuple[Image, list[tuple[str, str]]]:
        """Unpack and record the image of a stored manifest; name it ``tags``/``digests``.

        Returns the image and the (name, old image ID) of names moved from other images.
        """
        raw = self._blob(manifest_digest, "manifest")
        try:
            media_type = sniff_media_type(raw)
            manifest = parse_manifest(raw, media_type)
            config_raw = self._blob(manifest.config.digest, "config")
            config = parse_config(config_raw)
        except DecodeError as exc:
            raise ImageError(f"manifest {manifest_digest}: {exc}") from None
        if manifest.config.media_type not in CONFIG_TYPES:
            raise ImageError(f"manifest {manifest_digest} is not a container image: its config "
                             f"is {manifest.config.media_type!r}")
        if len(config_raw) != manifest.config.size:
            raise ImageError(f"manifest {manifest_digest}: config is {len(config_raw)} bytes, "
                             f"the manifest says {manifest.config.size}")
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise ImageError(f"manifest {manifest_digest} has {len(manifest.layers)} layers but "
                             f"its config lists {len(diff_ids)} diff IDs")
        created: list[str] = []
        try:
            layers = self._unpack(manifest, diff_ids, created)
            record = ImageRecord(
                id=manifest.config.digest, manifest_digest=manifest_digest,
                manifest_media_type=media_type, index_digest=index_digest,
                created=config.created, size=sum(la.size for la in layers),
                top_layer=layers[-1].chain_id if layers else None, last_tag_time=None,
                added=time.time())
            blobs = [manifest_digest, manifest.config.digest,
                     *(la.blob_digest for la in layers)]
            if index_digest:
                blobs.append(index_digest)
            displaced = self.db.add_image(
                record, layers, blobs,
                [(str(t), "tag") for t in tags] + [(str(d), "digest") for d in digests])
        except BaseException:
            self._drop_chains(created)
            raise
        return self._image(record.id), displaced

    def _unpack(self, manifest: Manifest, diff_ids: list[str],
                created: list[str]) -> list[ImageLayer]:
        chains = chain_ids(diff_ids)
        layers = []
        for i, (desc, diff_id, chain) in enumerate(zip(manifest.layers, diff_ids, chains,
                                                       strict=True)):
            where = f"layer {i} ({desc.digest})"
            if desc.media_type not in LAYER_TYPES:
                raise ImageError(f"{where}: unsupported layer media type {desc.media_type!r}")
            if not self.content.has(desc.digest):
                raise ImageError(f"{where}: blob is missing from the content store")
            blob_size = self.content.size(desc.digest)
            if blob_size != desc.size:
                raise ImageError(f"{where}: blob is {blob_size} bytes, the manifest says "
                                 f"{desc.size}")
            sizes = self.db.layer_size(chain)
            if not self.snapshots.exists(chain):
                sizes = self._unpack_layer(where, desc.digest, diff_id, chain,
                                           chains[i - 1] if i else None, created)
            elif sizes is None:  # unpacked by a concurrent or interrupted registration
                with self.content.open(desc.digest) as f:
                    measured = measure_layer(f)
                sizes = (measured.size, measured.tar_size)
            layers.append(ImageLayer(position=i, chain_id=chain, diff_id=diff_id,
                                     blob_digest=desc.digest, media_type=desc.media_type,
                                     blob_size=desc.size, size=sizes[0], tar_size=sizes[1]))
        return layers

    def _unpack_layer(self, where: str, blob: str, diff_id: str, chain: str,
                      parent: str | None, created: list[str]) -> tuple[int, int]:
        key = f"extract-{secrets.token_hex(4)}-{chain}"
        self.snapshots.prepare(key, parent)
        try:
            with self.content.open(blob) as f:
                applied = self.snapshots.apply(key, f)
            if applied.diff_id != diff_id:
                raise ImageError(f"{where}: the layer's content has diff ID {applied.diff_id}, "
                                 f"the image config says {diff_id}")
        except ArchiveError as exc:
            self.snapshots.remove(key)
            raise ImageError(f"{where}: {exc}") from None
        except BaseException:
            self.snapshots.remove(key)
            raise
        try:
            self.snapshots.commit(key, chain)
            created.append(chain)
        except SnapshotExists:  # another registration unpacked it meanwhile
            self.snapshots.remove(key)
        return applied.size, applied.tar_size

    def put_manifest(self, config: Descriptor, layers: list[Descriptor],
                     added: list[str]) -> str:
        """Store the OCI manifest of ``config`` and ``layers`` for an image that came without
        one (load of a docker-archive, import); its digest joins ``added`` if it is new."""
        return self.put_blob(to_json_bytes(Manifest(schema_version=2, media_type=OCI_MANIFEST,
                                                    config=config, layers=layers)), added)

    def put_blob(self, data: bytes, added: list[str]) -> str:
        """Store ``data``; its digest, which joins ``added`` if the store did not have it."""
        digest = digest_of(data)
        if not self.content.has(digest):
            added.append(digest)
        return self.content.put(data)

    def discard_unreferenced(self, digests: Iterable[str]) -> None:
        """Delete the blobs of ``digests`` that no image records: what a failed load,
        import or pull brought in, so that the store is as it was."""
        referenced = self.db.blobs()
        for digest in digests:
            if digest not in referenced and self.content.has(digest):
                with suppress(BlobNotFound):
                    self.content.delete(digest)

    def _drop_chains(self, chains: Iterable[str]) -> None:
        """Remove snapshots of layers no image records (top first)."""
        known = self.db.chains()
        for chain in reversed(list(chains)):
            if chain not in known and self.snapshots.exists(chain):
                self.snapshots.remove(chain)

    # Names --------------------------------------------------------------------------------

    def tag(self, source: str, target: str) -> Reference:
        """Docker's `tag`: ``target`` (a name, ``latest`` by default) now names ``source``."""
        image_id = self.resolve(source)
        ref = parse_normalized(target)
        if ref.digest:
            raise ImageError("refusing to create a tag with a digest reference")
        ref = ref if ref.tag else ref.with_tag("latest")
        self.db.set_refs(image_id, [(str(ref), "tag")])
        return ref

    def _exact_ref(self, ref_or_id: str, refs: list[tuple[str, str, str]]) -> str | None:
        """The stored name ``ref_or_id`` spells, if it is a name rather than an ID."""
        try:
            parsed = parse_any(ref_or_id)
        except InvalidReference:
            return None
        if not isinstance(parsed, Reference):
            return None
        full = str(parsed.with_digest(parsed.digest) if parsed.digest else
                   parsed if parsed.tag else parsed.with_tag("latest"))
        return full if any(name == full for name, _, _ in refs) else None

    def remove(self, ref_or_id: str, *, force: bool = False) -> list[dict[str, str]]:
        """Docker's `rmi`: untag, and delete the image once nothing names or uses it.

        Returns Docker's response items: {"Untagged": name} and {"Deleted": id}.
        """
        image_id = self.resolve(ref_or_id)
        refs = self.db.refs(image_id)
        named = self._exact_ref(ref_or_id, refs)
        users = self.db.users(image_id)
        short = image_id.split(":", 1)[1][:12]
        if named is not None:
            others = [n for n, _, kind in refs if kind == "tag" and n != named]
            if not others and users and not force:
                raise ImageConflict(
                    f'conflict: unable to remove repository reference "{ref_or_id}" (must '
                    f"force) - container {users[0]} is using its referenced image {short}")
            doomed = [named] if others else [n for n, _, _ in refs]
        else:
            if len({parse_normalized(n).name for n, _, _ in refs}) > 1 and not force:
                raise ImageConflict(f"conflict: unable to delete {short} (must be forced) - "
                                    "image is referenced in multiple repositories")
            if users and not force:
                raise ImageConflict(f"conflict: unable to delete {short} (must be forced) - "
                                    f"image is being used by container {users[0]}")
            doomed = [n for n, _, _ in refs]
        self.db.delete_refs(doomed)
        result = [{"Untagged": parse_normalized(n).familiar()} for n in doomed]
        if self.db.refs(image_id) or users:
            return result  # still named, or kept (dangling) for the containers using it
        return result + self._delete(image_id)

    def _delete(self, image_id: str) -> list[dict[str, str]]:
        chains, blobs = self.db.delete_image(image_id)
        for chain in chains:
            # A layer something else still builds on (the build cache's layers) stays
            # until that goes: the image is gone either way, so this is no failure.
            with suppress(SnapshotError):
                if self.snapshots.exists(chain):
                    self.snapshots.remove(chain)
        for digest in blobs:
            with suppress(BlobNotFound):
                self.content.delete(digest)
        return [{"Deleted": image_id}, *({"Deleted": chain} for chain in chains)]

    def prune(self) -> list[dict[str, str]]:
        """Delete dangling images (no names) that no container uses."""
        deleted: list[dict[str, str]] = []
        for record in self.db.images():
            if not self.db.refs(record.id) and not self.db.users(record.id):
                deleted.extend(self._delete(record.id))
        return deleted

    # Containers ---------------------------------------------------------------------------

    def prepare_rootfs(self, key: str, ref_or_id: str) -> list[Mount]:
        """A writable snapshot ``key`` on the image: a container's root filesystem."""
        image = self.get(ref_or_id)
        return self.snapshots.prepare(key, image.top_layer)

    def pin(self, ref_or_id: str, holder: str) -> None:
        """Record that ``holder`` (a container) uses the image: `rmi` then refuses."""
        self.db.add_user(self.resolve(ref_or_id), holder)

    def unpin(self, image_id: str, holder: str) -> None:
        self.db.remove_user(image_id, holder)

    # Queries as Docker answers them -------------------------------------------------------

    def list_images(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """Docker's image list (GET /images/json) with dangling/reference/label filters."""
        filters = filters or {}
        for key in filters:
            if key not in ("dangling", "reference", "label"):
                raise ImageError(f"invalid filter '{key}'")
        dangling = filters.get("dangling")
        if dangling and dangling[-1] not in ("true", "false", "1", "0"):
            raise ImageError(f"invalid filter 'dangling={dangling[-1]}'")
        patterns = [_glob(p) for p in filters.get("reference", [])]
        out = []
        for image in sorted(self.images(), key=lambda im: parse_time(im.config.created),
                            reverse=True):
            tags = image.repo_tags
            if dangling is not None and (not tags) != (dangling[-1] in ("true", "1")):
                continue
            if patterns:
                tags = [t for t in tags if any(
                    p.match(t) or p.match(t.rsplit(":", 1)[0]) for p in patterns)]
                if not tags:
                    continue
            labels = (image.config.config.labels if image.config.config else None) or {}
            if not all(self._label_match(labels, want) for want in filters.get("label", [])):
                continue
            out.append({
                "Id": image.id, "ParentId": "", "RepoTags": tags,
                "RepoDigests": image.repo_digests,
                "Created": parse_time(image.config.created), "Size": image.record.size,
                "SharedSize": -1, "VirtualSize": image.record.size,
                "Labels": labels or None, "Containers": len(self.db.users(image.id)),
            })
        return out

    @staticmethod
    def _label_match(labels: dict[str, str], want: str) -> bool:
        key, sep, value = want.partition("=")
        return key in labels and (not sep or labels[key] == value)

    def inspect(self, ref_or_id: str) -> dict[str, Any]:
        """Docker's image inspect JSON (API 1.41 field set)."""
        image = self.get(ref_or_id)
        raw = image.raw_config
        chains = [la.chain_id for la in image.layers]
        dirs = [self.snapshots.fs(self.snapshots.stat(c)) for c in chains]
        driver: dict[str, str] = {}
        if dirs:
            driver = {"UpperDir": dirs[-1]} if self.snapshots.name == "overlayfs" else \
                {"Dir": dirs[-1]}
            if len(dirs) > 1 and self.snapshots.name == "overlayfs":
                driver["LowerDir"] = ":".join(reversed(dirs[:-1]))
        return {
            "Id": image.id,
            "RepoTags": image.repo_tags,
            "RepoDigests": image.repo_digests,
            "Parent": "",
            "Comment": raw.get("comment", ""),
            "Created": raw.get("created") or _ZERO_TIME,
            "Container": raw.get("container", ""),
            "ContainerConfig": docker_container_config(raw.get("container_config")),
            "DockerVersion": raw.get("docker_version", ""),
            "Author": raw.get("author", ""),
            "Config": docker_container_config(raw.get("config")),
            "Architecture": image.config.architecture,
            **({"Variant": image.config.variant} if image.config.variant else {}),
            "Os": image.config.os,
            **({"OsVersion": image.config.os_version} if image.config.os_version else {}),
            "Size": image.record.size,
            "VirtualSize": image.record.size,
            "GraphDriver": {"Data": driver or None, "Name": self.snapshots.name},
            "RootFS": {"Type": image.config.rootfs.type,
                       "Layers": list(image.config.rootfs.diff_ids)},
            "Metadata": {"LastTagTime": rfc3339(image.record.last_tag_time)},
        }

    def history(self, ref_or_id: str) -> list[dict[str, Any]]:
        """Docker's image history, newest first."""
        image = self.get(ref_or_id)
        entries = []
        layer = 0
        for h in image.config.history or []:
            size = 0
            if not h.empty_layer:
                size = image.layers[layer].size if layer < len(image.layers) else 0
                layer += 1
            entries.append({"Id": "<missing>", "Created": parse_time(h.created),
                            "CreatedBy": h.created_by or "", "Tags": None, "Size": size,
                            "Comment": h.comment or ""})
        entries.reverse()
        if entries:
            entries[0]["Id"] = image.id
            entries[0]["Tags"] = image.repo_tags or None
        return entries

    # Housekeeping -------------------------------------------------------------------------

    def gc(self) -> dict[str, list[str]]:
        """Remove what a crash left: snapshots and blobs no image records, temp files.

        Run it when nothing else uses the store (sampand runs it at start-up): a pull in
        flight has blobs that no image records yet. An interrupted pull's verified blobs go
        too; its partial download (ingest/) stays for the next pull to resume.
        """
        known = self.db.chains()
        referenced = self.db.blobs()
        for held in self._holders:
            chains, digests = held()
            known |= chains
            referenced |= digests
        removed: list[str] = []
        progress = True
        while progress:  # children first: a parent has to wait for its orphaned children
            progress = False
            infos = self.snapshots.walk()
            parents = {i.parent for i in infos if i.parent}
            for info in infos:
                doomed = info.key.startswith("extract-") or (
                    info.kind == "committed" and info.key.startswith("sha256:")
                    and info.key not in known)
                if doomed and info.key not in parents:
                    self.snapshots.remove(info.key)
                    removed.append(info.key)
                    progress = True
        removed.extend(self.snapshots.cleanup())
        blobs = [d for d, _ in self.content.walk() if d not in referenced]
        for digest in blobs:
            self.content.delete(digest)
        self.content.clean_tmp()
        return {"snapshots": removed, "blobs": blobs}


# Docker's container.Config as image inspect shows it: every field, zero values included.
_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": None,
}


def docker_container_config(raw: Any) -> dict[str, Any]:
    """Docker's JSON form of a container config: every field, zero values included."""
    config = dict(_CONFIG_DEFAULTS)
    if isinstance(raw, dict):
        config.update(raw)
    return config


def image_reference(text: str) -> Reference:
    """A name to store an image under (``latest`` by default, no digest)."""
    ref = parse_docker_ref(text)
    if ref.digest:
        raise InvalidReference(f"{text}: a digest cannot name a loaded image")
    return ref
