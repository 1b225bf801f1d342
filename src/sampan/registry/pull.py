"""`docker pull`: a reference from a registry into the content store and the image store.

The tag is resolved to a manifest or an index (the platform's manifest is chosen from an
index), the config and the layers not yet in the content store are downloaded in parallel
and verified against their digests while they stream in, then ``ImageStore.register``
unpacks and records the image, exactly as a `docker load` ends.

What a failure leaves: a blob that does not match its digest is never stored. After a
verification, format or unpack failure, the blobs this pull added are removed again, so the
store is as it was. After a dropped connection (retries exhausted) the verified blobs and the
partial download stay, so the next pull resumes instead of starting over (``gc`` drops them
if nobody pulls again).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field

import httpx

from ..content import DigestMismatch, IngestLocked, ShortBlob, SizeMismatch
from ..images.reference import DEFAULT_DOMAIN, Reference, parse_docker_ref
from ..images.store import Image, ImageStore
from ..oci.decode import DecodeError
from ..oci.image import (
    Descriptor,
    Platform,
    normalize_platform,
    parse_config,
    parse_index,
    parse_manifest,
    parse_platform,
    platform_matches,
    select_manifest,
)
from . import progress as p
from .client import FetchedManifest, RegistryClient, client_for
from .errors import (
    ManifestUnknown,
    NotFound,
    RegistryConnectionError,
    RegistryError,
    Unauthorized,
    UnsupportedManifest,
    VerificationError,
    join_errors,
)
from .options import RegistryOptions
from .progress import ProgressCallback, Reporter, short_id
from .sources import BlobSources

log = logging.getLogger(__name__)

_CONFIG_LIMIT = 16 << 20


@dataclass
class PullResult:
    """What a pull did: the image, the digest the reference resolved to, which blobs moved."""

    reference: Reference
    digest: str  # what the tag resolved to: the index digest for a multi-platform image
    manifest_digest: str  # the platform's manifest, registered
    index_digest: str | None
    image: Image
    up_to_date: bool
    downloaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Docker's closing line."""
        if self.up_to_date:
            return f"Status: Image is up to date for {self.reference.familiar()}"
        return f"Status: Downloaded newer image for {self.reference.familiar()}"


class _Cancelled(Exception):
    """Another download of the same pull failed: stop this one."""


def _as_reference(reference: str | Reference) -> Reference:
    if isinstance(reference, Reference):
        if reference.digest or reference.tag:
            return reference
        return reference.with_tag("latest")
    return parse_docker_ref(reference)


def _as_platform(platform: Platform | str | None) -> Platform | None:
    if platform is None or isinstance(platform, Platform):
        return platform
    try:
        return parse_platform(platform)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None


class _Puller:
    def __init__(self, store: ImageStore, client: RegistryClient, ref: Reference,
                 platform: Platform | None, report: Reporter) -> None:
        self.store = store
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.platform = platform
        self.report = report
        self.options = client.options
        self.added: list[str] = []
        self.downloaded: list[str] = []
        self.existing: list[str] = []
        self._added_lock = threading.Lock()

    # Manifests ----------------------------------------------------------------------------

    def _manifest(self, reference: str) -> FetchedManifest:
        try:
            return self.client.get_manifest(self.repo, reference)
        except ManifestUnknown as exc:
            detail = join_errors(exc.errors) or "manifest unknown: manifest unknown"
            name = f"{self.ref.name}@{reference}" if reference.startswith("sha") \
                else f"{self.ref.name}:{reference}"
            raise ManifestUnknown(f"manifest for {name} not found: {detail}",
                                  status=exc.status, errors=exc.errors) from None
        except NotFound as exc:  # NAME_UNKNOWN: no such repository
            detail = join_errors(exc.errors) or str(exc)
            raise NotFound(f"repository {self.ref.name} not found: {detail}",
                           status=exc.status, errors=exc.errors) from None
        except Unauthorized as exc:
            if not exc.errors:  # no credentials for a Basic registry, token refused
                raise
            raise Unauthorized(
                f"pull access denied for {self.ref.familiar_name}, repository does not exist "
                f"or may require 'docker login': {join_errors(exc.errors)}",
                status=exc.status, errors=exc.errors) from None

    def _keep(self, fetched: FetchedManifest) -> None:
        content = self.store.content
        if not content.has(fetched.digest):
            content.ingest([fetched.data], fetched.digest, len(fetched.data), resume=False)
            self.added.append(fetched.digest)

    def _resolve(self) -> tuple[FetchedManifest, FetchedManifest]:
        """(what the reference names, the platform's manifest)."""
        top = self._manifest(self.ref.digest or self.ref.tag or "latest")
        if not top.is_index:
            return top, top
        try:
            index = parse_index(top.data, top.media_type)
            desc = select_manifest(index, self.platform)
        except DecodeError as exc:
            raise RegistryError(f"index {top.digest}: {exc}") from None
        except LookupError as exc:
            raise UnsupportedManifest(str(exc)) from None
        chosen = self._manifest(desc.digest)
        if chosen.is_index:
            raise UnsupportedManifest(f"index {top.digest}: entry {desc.digest} for "
                                      f"{desc.platform} is itself an index")
        return top, chosen

    # Blobs --------------------------------------------------------------------------------

    def _fetch(self, desc: Descriptor, what: str, cancel: threading.Event,
               show: bool) -> None:
        """Download one blob into the content store, verified, resuming after a drop."""
        content = self.store.content
        digest, size, layer_id = desc.digest, desc.size, short_id(desc.digest)
        attempt = 0
        while True:
            if cancel.is_set():
                raise _Cancelled()
            try:
                self._download(desc, cancel, show)
                break
            except IngestLocked:  # another pull is fetching it: wait for that one
                if show:
                    self.report(p.WAITING, layer_id)
                time.sleep(0.2)
                if content.has(digest):
                    if show:
                        self.report(p.DOWNLOAD_COMPLETE, layer_id)
                    return
            except _Cancelled:
                content.abort(digest)
                raise
            except (DigestMismatch, SizeMismatch):
                content.abort(digest)
                raise VerificationError(f"{what} verification failed for digest {digest}: "
                                        f"the content received does not match it "
                                        f"({size} bytes expected)") from None
            except (ShortBlob, RegistryConnectionError, httpx.TransportError) as exc:
                if attempt >= self.options.retries:
                    if isinstance(exc, RegistryConnectionError):
                        raise
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise RegistryConnectionError(
                        f"{what} {digest}: download broke off ({exc or type(exc).__name__}; "
                        f"{tries}); the partial data is kept: pulling again resumes") from exc
                delay = self.options.retry_delay * (2 ** attempt)
                attempt += 1
                if show:
                    self.report(f"{p.RETRYING} in {delay:g} seconds", layer_id)
                time.sleep(delay)
        with self._added_lock:
            self.added.append(digest)
            self.downloaded.append(digest)
        if show:
            self.report(p.VERIFYING, layer_id)
            self.report(p.DOWNLOAD_COMPLETE, layer_id)

    def _download(self, desc: Descriptor, cancel: threading.Event, show: bool) -> None:
        content = self.store.content
        digest, size, layer_id = desc.digest, desc.size, short_id(desc.digest)
        offset = content.ingest_offset(digest)
        if offset >= size:
            content.abort(digest)
            offset = 0
        with self.client.open_blob(self.repo, digest, offset) as blob:
            if blob.offset < 0:  # 416: the registry refused the range
                content.abort(digest)
                raise ShortBlob(digest, offset, size)
            if blob.length is not None and blob.offset + blob.length != size:
                raise VerificationError(
                    f"blob {digest}: the registry sends {blob.offset + blob.length} bytes, "
                    f"the manifest says {size}")
            done = blob.offset

            def chunks() -> Iterator[bytes]:
                nonlocal done
                for chunk in blob.chunks():
                    if cancel.is_set():
                        raise _Cancelled()
                    done += len(chunk)
                    if show:
                        self.report.bytes(p.DOWNLOADING, layer_id, done, size, digest)
                    yield chunk

            if show:
                self.report(p.DOWNLOADING, layer_id, current=done, total=size, digest=digest)
            content.ingest(chunks(), digest, size, resume=blob.offset > 0)

    def _layers(self, layers: list[Descriptor]) -> None:
        content = self.store.content
        todo: list[Descriptor] = []
        seen: set[str] = set()
        for desc in layers:
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if content.has(desc.digest):
                self.existing.append(desc.digest)
                self.report(p.ALREADY_EXISTS, short_id(desc.digest), digest=desc.digest)
            else:
                todo.append(desc)
                self.report(p.PULLING_FS_LAYER, short_id(desc.digest), digest=desc.digest)
        workers = max(1, self.options.max_concurrent_downloads)
        for desc in todo[workers:]:
            self.report(p.WAITING, short_id(desc.digest), digest=desc.digest)
        if not todo:
            return
        cancel = threading.Event()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sampan-pull")
        futures: list[Future[None]] = []
        try:
            futures = [pool.submit(self._fetch, d, "filesystem layer", cancel, True)
                       for d in todo]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                cancel.set()
                for f in futures:
                    f.cancel()
                wait(futures)
                errors = [e for f in futures if not f.cancelled()
                          and (e := f.exception()) is not None]
                # The first real failure, not the downloads it cancelled.
                raise next((e for e in errors if not isinstance(e, _Cancelled)), errors[0])
        except BaseException:
            cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _rollback(self, keep_downloads: bool) -> None:
        """Remove what this pull stored that no image uses (unless a retry may want it)."""
        self.store.discard_unreferenced(
            d for d in self.added if not (keep_downloads and d in self.downloaded))

    # The pull -----------------------------------------------------------------------------

    def run(self) -> PullResult:
        ref = self.ref
        self.report(f"Pulling from {ref.path}", ref.digest or ref.tag)
        try:
            top, chosen = self._resolve()
            self._keep(top)
            self._keep(chosen)
            try:
                manifest = parse_manifest(chosen.data, chosen.media_type)
            except DecodeError as exc:
                raise RegistryError(f"manifest {chosen.digest}: {exc}") from None
            if manifest.config.size > _CONFIG_LIMIT:
                raise RegistryError(f"manifest {chosen.digest}: its config is "
                                    f"{manifest.config.size} bytes, too large for one")
            if not self.store.content.has(manifest.config.digest):
                self._fetch(manifest.config, "image config", threading.Event(), False)
            try:
                config = parse_config(self.store.content.read(manifest.config.digest))
            except DecodeError as exc:
                raise RegistryError(f"image config {manifest.config.digest}: {exc}") from None
            if self.platform is not None and not top.is_index and \
                    not platform_matches(self.platform, config.platform):
                raise UnsupportedManifest(
                    f"image with reference {ref.familiar()} was found but does not match the "
                    f"specified platform: wanted {normalize_platform(self.platform)}, actual: "
                    f"{normalize_platform(config.platform)}")
            image_id = manifest.config.digest
            name = str(ref) if ref.tag else str(ref.with_digest(top.digest))
            up_to_date = (self.store.db.image(image_id) is not None
                          and self.store.db.ref_target(name) == image_id)
            self._layers(manifest.layers)
            image, _ = self.store.register(
                chosen.digest, tags=[ref] if ref.tag else [],
                digests=[ref.with_digest(top.digest)],
                index_digest=top.digest if top.is_index else None)
        except RegistryConnectionError:
            self._rollback(keep_downloads=True)
            raise
        except BaseException:
            self._rollback(keep_downloads=False)
            raise
        with suppress(Exception):  # only an optimisation for later pushes
            sources = BlobSources.beside(self.store.root)
            try:
                sources.record(ref.domain, self.repo,
                               [top.digest, chosen.digest, manifest.config.digest,
                                *(la.digest for la in manifest.layers)])
            finally:
                sources.close()
        for desc in manifest.layers:
            if desc.digest in self.downloaded:
                self.report(p.PULL_COMPLETE, short_id(desc.digest), digest=desc.digest)
        result = PullResult(reference=ref, digest=top.digest, manifest_digest=chosen.digest,
                            index_digest=top.digest if top.is_index else None, image=image,
                            up_to_date=up_to_date, downloaded=list(self.downloaded),
                            existing=list(self.existing))
        self.report(f"Digest: {top.digest}")
        self.report(result.status)
        return result


def pull(store: ImageStore, reference: str | Reference,
         platform: Platform | str | None = None, *, options: RegistryOptions | None = None,
         progress: ProgressCallback | None = None,
         client: RegistryClient | None = None) -> PullResult:
    """Pull ``reference`` (``busybox``, ``host:5000/app:v1``, ``name@sha256:…``) into
    ``store``; ``platform`` picks from a multi-platform image (default: the host's).

    ``progress`` is called with each ``ProgressEvent``, from worker threads but never two
    at a time. Raises ``RegistryError`` (subclasses per cause) or ``ImageError`` (the
    image cannot be unpacked).
    """
    ref = _as_reference(reference)
    wanted = _as_platform(platform)
    reporter = Reporter(progress)
    if client is None and options is not None and ref.domain == DEFAULT_DOMAIN:
        for mirror in options.mirrors:
            try:
                with _mirror_client(mirror, options) as via:
                    return _Puller(store, via, ref, wanted, reporter).run()
            except RegistryError as exc:  # as dockerd: on to the next mirror, then the Hub
                log.info("pull %s from mirror %s: %s", ref, mirror, exc)
    with client_for(ref.domain, options, client) as client:
        return _Puller(store, client, ref, wanted, reporter).run()


def _mirror_client(mirror: str, options: RegistryOptions) -> RegistryClient:
    """A client for a registry-mirrors URL; http:// ones are reached over plain HTTP."""
    scheme, _, rest = mirror.partition("://")
    host = rest.split("/", 1)[0]
    if scheme == "http":
        options = dataclasses.replace(
            options, insecure_registries=(*options.insecure_registries, host))
    return RegistryClient(host, dataclasses.replace(options, credentials=None))
