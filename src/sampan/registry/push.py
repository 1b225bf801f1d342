"""`docker push`: an image of the store to a registry, blobs first, then its manifest.

A blob the repository already has is skipped (HEAD); one that another repository of the
same registry has is mounted from there instead of uploaded (sources from earlier pulls and
pushes, and the image's other names); the rest is uploaded in one PUT or in PATCH chunks.
The manifest goes last, byte for byte as stored, so its digest is the image's digest in the
registry, and that digest is recorded as one of the image's RepoDigests, as Docker does.
An image pulled from an index whose every platform the store holds goes as that index:
each platform's blobs and manifest, then the index itself under the tag.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..images.reference import Reference, parse_normalized
from ..images.store import Image, ImageNotFound, ImageStore
from ..oci.decode import DecodeError
from ..oci.image import (
    MANIFEST_TYPES,
    Descriptor,
    Manifest,
    digest_of,
    parse_index,
    parse_manifest,
    sniff_media_type,
)
from . import progress as p
from .client import RegistryClient, client_for
from .errors import NotFound, RegistryError
from .options import RegistryOptions
from .progress import ProgressCallback, Reporter, short_id
from .sources import BlobSources

_MOUNT_CANDIDATES = 3


@dataclass
class PushResult:
    """What a push did: the manifest digest and size the registry now has under the tag."""

    reference: Reference
    digest: str
    size: int
    media_type: str
    pushed: list[str] = field(default_factory=list)
    mounted: list[tuple[str, str]] = field(default_factory=list)  # (digest, source repo)
    existing: list[str] = field(default_factory=list)


def _as_reference(reference: str | Reference) -> Reference:
    ref = reference if isinstance(reference, Reference) else parse_normalized(reference)
    if ref.digest:
        raise RegistryError(f"{ref}: cannot push a digest reference (push a tag)")
    return ref if ref.tag else ref.with_tag("latest")


class _Pusher:
    def __init__(self, store: ImageStore, client: RegistryClient, ref: Reference,
                 image: Image, report: Reporter) -> None:
        self.store = store
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.image = image
        self.report = report
        self.result_lock = threading.Lock()
        self.pushed: list[str] = []
        self.mounted: list[tuple[str, str]] = []
        self.existing: list[str] = []
        sources = BlobSources.beside(store.root)
        try:
            self._sources = {la.blob_digest: sources.repositories(ref.domain, la.blob_digest)
                             for la in image.layers}
        finally:
            sources.close()
        # The image's other names on this registry hold its blobs too.
        self._named = [parse_normalized(n).path for n, _ in image.refs
                       if parse_normalized(n).domain == ref.domain]

    def _candidates(self, digest: str) -> list[str]:
        out: list[str] = []
        for repo in [*self._sources.get(digest, []), *self._named]:
            if repo != self.repo and repo not in out:
                out.append(repo)
        return out[:_MOUNT_CANDIDATES]

    def _push_blob(self, desc: Descriptor, show: bool) -> None:
        digest = desc.digest
        layer_id = short_id(digest)
        content = self.store.content
        size = content.size(digest)
        if size != desc.size:
            raise RegistryError(f"blob {digest} is {size} bytes in the store, the manifest "
                                f"says {desc.size}")
        if self.client.blob_size(self.repo, digest,
                                 scopes=self.client.push_scope(self.repo)) is not None:
            with self.result_lock:
                self.existing.append(digest)
            if show:
                self.report(p.LAYER_EXISTS, layer_id, digest=digest)
            return
        for source in self._candidates(digest):
            if self.client.mount_blob(self.repo, digest, source):
                with self.result_lock:
                    self.mounted.append((digest, source))
                if show:
                    self.report(f"{p.MOUNTED_FROM} {source}", layer_id, digest=digest)
                return
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if show:
                self.report.bytes(p.PUSHING, layer_id, done, size, digest)

        if show:
            self.report(p.PUSHING, layer_id, current=0, total=size, digest=digest)
        self.client.upload_blob(self.repo, digest, size, lambda: content.open(digest), advance)
        with self.result_lock:
            self.pushed.append(digest)
        if show:
            self.report(p.PUSHED, layer_id, digest=digest)

    def _layers(self, layers: list[Descriptor]) -> None:
        unique = list({d.digest: d for d in layers}.values())
        for desc in reversed(unique):
            self.report(p.PREPARING, short_id(desc.digest), digest=desc.digest)
        workers = max(1, self.client.options.max_concurrent_uploads)
        for desc in list(reversed(unique))[workers:]:
            self.report(p.WAITING, short_id(desc.digest), digest=desc.digest)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sampan-push") as pool:
            futures = [pool.submit(self._push_blob, d, True) for d in reversed(unique)]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                f.cancel()
            for f in done:
                error = f.exception()
                if error is not None:
                    raise error

    def _manifest(self, digest: str, media_type: str) -> Manifest:
        try:
            return parse_manifest(self.store.content.read(digest), media_type)
        except DecodeError as exc:
            raise RegistryError(f"manifest {digest}: {exc}") from None

    def _platforms(self) -> tuple[bytes, str, list[Descriptor]] | None:
        """The index the image came from, when the store holds every platform of it with
        all their blobs (each platform pulled): the push then sends the multi-platform image,
        as it was, rather than the one platform."""
        content = self.store.content
        digest = self.image.record.index_digest
        if digest is None or not content.has(digest):
            return None
        data = content.read(digest)
        try:
            media_type = sniff_media_type(data)
            index = parse_index(data, media_type)
        except DecodeError:
            return None
        for desc in index.manifests:
            if desc.media_type not in MANIFEST_TYPES or not content.has(desc.digest):
                return None
            manifest = self._manifest(desc.digest, desc.media_type)
            if not all(content.has(d.digest) for d in (manifest.config, *manifest.layers)):
                return None
        return data, media_type, list(index.manifests)

    def _send(self, digest: str, media_type: str, reference: str) -> list[str]:
        """One image manifest after its blobs; the digests the repository now holds."""
        manifest = self._manifest(digest, media_type)
        self._layers(manifest.layers)
        self._push_blob(manifest.config, show=False)
        self.client.put_manifest(self.repo, reference, self.store.content.read(digest),
                                 media_type)
        return [digest, manifest.config.digest, *(la.digest for la in manifest.layers)]

    def run(self) -> PushResult:
        ref, image = self.ref, self.image
        self.report(f"The push refers to repository [{ref.name}]")
        tag = ref.tag or "latest"
        platforms = self._platforms()
        if platforms is None:
            media_type = image.record.manifest_media_type
            data = self.store.content.read(image.record.manifest_digest)
            held = self._send(image.record.manifest_digest, media_type, tag)
        else:  # every platform's manifest by digest, then the index under the tag
            data, media_type, children = platforms
            held = [d for child in children
                    for d in self._send(child.digest, child.media_type, child.digest)]
            self.client.put_manifest(self.repo, tag, data, media_type)
        digest = digest_of(data)
        self.report(f"{tag}: digest: {digest} size: {len(data)}")
        self.report("", aux={"Tag": tag, "Digest": digest, "Size": len(data)})
        self.store.db.set_refs(image.id, [(str(ref.with_digest(digest)), "digest")])
        sources = BlobSources.beside(self.store.root)
        try:
            sources.record(ref.domain, self.repo, [digest, *held])
        finally:
            sources.close()
        return PushResult(reference=ref, digest=digest, size=len(data), media_type=media_type,
                          pushed=list(self.pushed), mounted=list(self.mounted),
                          existing=list(self.existing))


def push(store: ImageStore, reference: str | Reference, *,
         options: RegistryOptions | None = None, progress: ProgressCallback | None = None,
         client: RegistryClient | None = None) -> PushResult:
    """Push the local image named ``reference`` (tag ``latest`` by default) to its registry.

    ``progress`` gets Docker's push events ("Preparing", "Pushing", "Pushed", "Layer
    already exists", "Mounted from …", then "TAG: digest: … size: …").
    """
    ref = _as_reference(reference)
    try:
        image = store.get(str(ref))
    except ImageNotFound:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}") \
            from None
    with client_for(ref.domain, options, client) as client:
        return _Pusher(store, client, ref, image, Reporter(progress)).run()
