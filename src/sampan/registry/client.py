"""A Docker Registry HTTP API v2 / OCI distribution client for one registry.

It finds out how to reach the registry once (``GET /v2/``: HTTPS, or plain HTTP for an
insecure one, and the auth challenge), then speaks the distribution API: manifests by tag
or digest (verified), blobs streamed with ``Range`` resumption, uploads monolithic or
chunked, cross-repository mounts, tags and the catalog. Every failure becomes a
``RegistryError`` worded as dockerd words it.

httpx is the HTTP library: a thread-safe connection pool (layers move in parallel),
streaming bodies both ways, an ``SSLContext`` per client for custom CAs, per-request
redirect control that drops ``Authorization`` when a blob redirects to another host, and
type annotations that mypy reads.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import BinaryIO

import httpx

from ..images.reference import DEFAULT_DOMAIN
from ..oci.decode import DecodeError
from ..oci.image import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    InvalidDigest,
    digest_of,
    parse_digest,
    sniff_media_type,
)
from .auth import Authenticator, repository_scope
from .credentials import load_credentials
from .errors import (
    ManifestUnknown,
    NotFound,
    RegistryConnectionError,
    RegistryError,
    Unauthorized,
    UnsupportedManifest,
    VerificationError,
    join_errors,
    parse_error_body,
)
from .options import RegistryOptions, is_insecure

DOCKER_HUB_HOST = "registry-1.docker.io"
MANIFEST_ACCEPT = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
SCHEMA1_TYPES = frozenset({"application/vnd.docker.distribution.manifest.v1+json",
                           "application/vnd.docker.distribution.manifest.v1+prettyjws"})
MAX_MANIFEST_SIZE = 4 << 20  # what dockerd accepts
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest or index as the registry sent it (bytes kept: they are its digest)."""

    data: bytes
    media_type: str
    digest: str

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


@dataclass
class BlobStream:
    """An open blob download: its chunks, from ``offset`` on (a resumed download)."""

    response: httpx.Response
    offset: int
    length: int | None  # bytes this response will carry, when the registry says

    def chunks(self) -> Iterator[bytes]:
        # As they arrive: a fixed chunk size would lose the buffered tail on a dropped
        # connection, and that tail is what a resumed download starts after.
        return self.response.iter_bytes()


def _what(method: str, url: str | httpx.URL) -> str:
    """Go's url.Error prefix: ``Get "https://…"``."""
    return f'{method.capitalize()} "{url}"'


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def connection_message(method: str, url: httpx.URL, exc: BaseException) -> str:
    """dockerd's wording for a transport failure (refused, TLS, DNS, timeout)."""
    host = url.host if url.port is None else f"{url.host}:{url.port}"
    text = str(exc)
    for cause in _cause_chain(exc):
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(cause):
            return f"{_what(method, url)}: dial tcp {host}: connect: connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or str(cause)
            if cause.verify_code in (18, 19, 20, 21):  # self-signed / unknown issuer
                reason = f"x509: certificate signed by unknown authority ({reason})"
            elif cause.verify_code == 62:
                reason = f"x509: certificate is not valid for {url.host} ({reason})"
            else:
                reason = f"x509: {reason}"
            return f"{_what(method, url)}: {reason}"
        if isinstance(cause, ssl.SSLError):
            return f"{_what(method, url)}: tls: {cause.reason or cause}"
        if "Name or service not known" in str(cause) or "No address associated" in str(cause):
            return f"{_what(method, url)}: dial tcp: lookup {url.host}: no such host"
    if isinstance(exc, httpx.TimeoutException):
        return f"{_what(method, url)}: i/o timeout ({text or type(exc).__name__})"
    return f"{_what(method, url)}: {text or type(exc).__name__}"


def _next_link(response: httpx.Response) -> str | None:
    """The ``rel="next"`` target of a paginated answer (``Link: </v2/…>; rel="next"``)."""
    for value in response.headers.get_list("link"):
        for part in value.split(","):
            target, _, params = part.partition(";")
            if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
                return str(response.url.join(target.strip().strip("<>")))
    return None


class RegistryClient:
    """The distribution API of one registry (``domain`` as in a reference)."""

    def __init__(self, domain: str, options: RegistryOptions | None = None) -> None:
        self.domain = domain or DEFAULT_DOMAIN
        self.options = options or RegistryOptions()
        self.host = DOCKER_HUB_HOST if self.domain == DEFAULT_DOMAIN else self.domain
        self.insecure = is_insecure(self.domain, self.options)
        credentials = self.options.credentials or load_credentials(self.domain,
                                                                   self.options.config_path)
        self._http = httpx.Client(
            verify=self._ssl_context(), timeout=httpx.Timeout(self.options.timeout),
            headers={"User-Agent": self.options.user_agent},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
        self.auth = Authenticator(self._http, credentials)
        self._base: str | None = None
        self._ping_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Connection ---------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False  # dockerd: HTTPS without verification, then plain HTTP
        context = ssl.create_default_context()
        if self.options.ca_file:
            try:
                context.load_verify_locations(cafile=self.options.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"CA bundle {self.options.ca_file}: {exc}") from None
        if self.options.certs_dir:
            directory = os.path.join(self.options.certs_dir, self.host)
            try:
                names = sorted(os.listdir(directory))
            except FileNotFoundError:
                names = []
            for name in names:
                path = os.path.join(directory, name)
                try:
                    if name.endswith(".crt"):
                        context.load_verify_locations(cafile=path)
                    elif name.endswith(".cert"):
                        context.load_cert_chain(path, path[:-len(".cert")] + ".key")
                except (OSError, ssl.SSLError) as exc:
                    raise RegistryError(f"certificate {path}: {exc}") from None
        return context

    def _send(self, request: httpx.Request, *, stream: bool = False,
              follow_redirects: bool = False) -> httpx.Response:
        try:
            return self._http.send(request, stream=stream, follow_redirects=follow_redirects)
        except httpx.TransportError as exc:
            raise RegistryConnectionError(connection_message(request.method, request.url, exc)) \
                from exc

    def ping(self) -> str:
        """Find the registry's scheme and auth challenge (``GET /v2/``); its base URL."""
        with self._ping_lock:
            if self._base is not None:
                return self._base
            schemes = ("https", "http") if self.insecure else ("https",)
            failure: RegistryError | None = None
            for scheme in schemes:
                url = f"{scheme}://{self.host}/v2/"
                try:
                    response = self._send(self._http.build_request("GET", url))
                except RegistryConnectionError as exc:
                    failure = exc
                    continue
                if response.status_code == 401:
                    self.auth.set_challenges(response.headers.get_list("www-authenticate"))
                elif response.status_code != 200 and \
                        "docker-distribution-api-version" not in response.headers:
                    failure = RegistryError(f"{_what('GET', url)}: not a registry (it answered "
                                            f"{response.status_code} "
                                            f"{response.reason_phrase})",
                                            status=response.status_code)
                    continue
                self._base = f"{scheme}://{self.host}"
                return self._base
            assert failure is not None
            raise failure

    def request(self, method: str, path: str, *, scopes: frozenset[str],
                headers: dict[str, str] | None = None,
                content: bytes | Iterator[bytes] | None = None, stream: bool = False,
                follow_redirects: bool = False, replayable: bool = True) -> httpx.Response:
        """One authenticated request (``path`` under the base URL, or a full URL).

        A 401 is answered once: with a token for the scopes the registry asked for, or
        with the Basic credentials if they were not sent yet.
        """
        url = path if "://" in path else self.ping() + path
        what = _what(method, url)
        for attempt in (0, 1):
            sent = dict(headers or {})
            sent.update(self.auth.headers(scopes, what))
            response = self._send(self._http.build_request(method, url, headers=sent,
                                                           content=content),
                                  stream=stream, follow_redirects=follow_redirects)
            if response.status_code == 401 and attempt == 0 and replayable and \
                    self._answer_challenge(response, scopes, "Authorization" in sent):
                response.close()
                continue
            return response
        raise AssertionError("unreachable")

    def _answer_challenge(self, response: httpx.Response, scopes: frozenset[str],
                          sent_auth: bool) -> bool:
        values = response.headers.get_list("www-authenticate")
        if not values:
            return False
        before = self.auth.challenge
        self.auth.set_challenges(values)
        after = self.auth.challenge
        if after is None:
            return False
        if after.scheme == "bearer":
            self.auth.invalidate(scopes)
            return True
        return not sent_auth or before is None or before.scheme != after.scheme

    def error(self, response: httpx.Response, what: str) -> RegistryError:
        """The RegistryError for a failed answer, with the registry's error codes."""
        try:
            body = response.read()
        except httpx.HTTPError:
            body = b""
        errors = parse_error_body(body)
        detail = join_errors(errors)
        status = response.status_code
        cls: type[RegistryError] = RegistryError
        if status == 401:
            cls, detail = Unauthorized, detail or "unauthorized: authentication required"
        elif status == 403:
            cls = Unauthorized
            detail = detail or "denied: requested access to the resource is denied"
        elif status == 404:
            if "MANIFEST_UNKNOWN" in {e.code for e in errors} or \
                    (not errors and "/manifests/" in what):
                cls, detail = ManifestUnknown, detail or "manifest unknown: manifest unknown"
            else:
                cls, detail = NotFound, detail or "not found"
        elif status == 429:
            detail = detail or "toomanyrequests: too many requests"
        else:
            text = f"unexpected status {status} {response.reason_phrase}"
            detail = f"{text}: {detail}" if detail else text
        return cls(f"{what}: {detail}", status=status, errors=errors)

    # Manifests ----------------------------------------------------------------------------

    @staticmethod
    def pull_scope(repo: str) -> frozenset[str]:
        return frozenset({repository_scope(repo, "pull")})

    @staticmethod
    def push_scope(repo: str) -> frozenset[str]:
        return frozenset({repository_scope(repo, "pull,push")})

    def get_manifest(self, repo: str, reference: str,
                     scopes: frozenset[str] | None = None) -> FetchedManifest:
        """The manifest or index ``repo:reference`` (a tag or a digest), verified."""
        path = f"/v2/{repo}/manifests/{reference}"
        response = self.request("GET", path, scopes=scopes or self.pull_scope(repo),
                                headers={"Accept": ", ".join(MANIFEST_ACCEPT)}, stream=True)
        try:
            what = _what("GET", response.request.url)
            if response.status_code != 200:
                raise self.error(response, what)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"{what}: manifest too large ({declared} bytes)")
            parts, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > MAX_MANIFEST_SIZE:
                    raise RegistryError(f"{what}: manifest larger than {MAX_MANIFEST_SIZE} bytes")
                parts.append(chunk)
        except httpx.TransportError as exc:
            raise RegistryConnectionError(connection_message("GET", response.request.url, exc)) \
                from exc
        finally:
            response.close()
        data = b"".join(parts)
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if media_type in SCHEMA1_TYPES:
            raise UnsupportedManifest(
                f"{self.domain}/{repo}:{reference}: Docker image manifests of schema version 1 "
                "are not supported (push it again with a current Docker or skopeo)")
        if media_type not in MANIFEST_TYPES and media_type not in INDEX_TYPES:
            try:
                media_type = sniff_media_type(data)
            except DecodeError as exc:
                raise RegistryError(f"{what}: {exc}") from None
        try:
            parse_digest(reference)
            by_digest = True
        except InvalidDigest:
            by_digest = False
        if by_digest:
            algorithm = parse_digest(reference)[0]
            if digest_of(data, algorithm) != reference:
                raise VerificationError(f"manifest verification failed for digest {reference}")
            digest = reference
        else:
            digest = digest_of(data)
            announced = response.headers.get("docker-content-digest")
            if announced:
                try:
                    algorithm = parse_digest(announced)[0]
                except InvalidDigest:
                    algorithm = ""
                if not algorithm or digest_of(data, algorithm) != announced:
                    raise VerificationError(
                        f"manifest verification failed for digest {announced}")
        return FetchedManifest(data, media_type, digest)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """Store a manifest under a tag (or its digest); the digest the registry gives it."""
        path = f"/v2/{repo}/manifests/{reference}"
        response = self.request("PUT", path, scopes=self.push_scope(repo),
                                headers={"Content-Type": media_type}, content=data)
        what = _what("PUT", response.request.url)
        if response.status_code not in (200, 201, 202):
            raise self.error(response, what)
        digest = digest_of(data)
        announced = response.headers.get("docker-content-digest")
        if announced and announced != digest and announced.startswith("sha256:"):
            raise VerificationError(f"{what}: the registry stored the manifest as {announced}, "
                                    f"its content is {digest}")
        return digest

    def manifest_exists(self, repo: str, reference: str) -> str | None:
        """The digest of ``repo:reference`` if the registry has it (HEAD)."""
        path = f"/v2/{repo}/manifests/{reference}"
        response = self.request("HEAD", path, scopes=self.pull_scope(repo),
                                headers={"Accept": ", ".join(MANIFEST_ACCEPT)})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.error(response, _what("HEAD", response.request.url))
        return response.headers.get("docker-content-digest") or ""

    # Blobs --------------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: str,
                  scopes: frozenset[str] | None = None) -> int | None:
        """The size of a blob the repository has, or None (HEAD)."""
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}",
                                scopes=scopes or self.pull_scope(repo), follow_redirects=True)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.error(response, _what("HEAD", response.request.url))
        length = response.headers.get("content-length", "")
        return int(length) if length.isdigit() else -1

    @contextmanager
    def open_blob(self, repo: str, digest: str, offset: int = 0) -> Iterator[BlobStream]:
        """Stream a blob, from ``offset`` when the registry honours ``Range``."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.request("GET", f"/v2/{repo}/blobs/{digest}",
                                scopes=self.pull_scope(repo), headers=headers, stream=True,
                                follow_redirects=True)
        try:
            what = _what("GET", response.request.url)
            start = 0
            if response.status_code == 206 and offset:
                content_range = response.headers.get("content-range", "")
                if not content_range.startswith(f"bytes {offset}-"):
                    raise RegistryError(f"{what}: asked for bytes from {offset}, got "
                                        f"{content_range or 'no Content-Range'}")
                start = offset
            elif response.status_code == 416 and offset:
                start = -1  # the partial data is no good: the caller starts again
            elif response.status_code != 200:
                if response.status_code == 404:
                    body_errors = parse_error_body(response.read())
                    raise NotFound(f"{what}: {join_errors(body_errors) or 'blob unknown'}",
                                   status=404, errors=body_errors)
                raise self.error(response, what)
            length = response.headers.get("content-length", "")
            yield BlobStream(response, start, int(length) if length.isdigit() else None)
        finally:
            response.close()

    def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Cross-repository mount of ``source``'s blob into ``repo``; whether it worked."""
        scopes = self.push_scope(repo) | self.pull_scope(source)
        path = f"/v2/{repo}/blobs/uploads/"
        url = str(httpx.URL(self.ping() + path, params={"mount": digest, "from": source}))
        try:
            response = self.request("POST", url, scopes=scopes,
                                    headers={"Content-Length": "0"}, content=b"")
        except Unauthorized:
            return False
        if response.status_code == 201:
            return True
        if response.status_code == 202:  # not mounted: an upload session was opened instead
            self._cancel_upload(response, scopes)
            return False
        if response.status_code in (401, 403, 404):
            return False
        raise self.error(response, _what("POST", response.request.url))

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise RegistryError(f"{_what(response.request.method, response.request.url)}: "
                                "the registry sent no upload Location")
        return str(response.request.url.join(location))

    def _cancel_upload(self, response: httpx.Response, scopes: frozenset[str]) -> None:
        with suppress(RegistryError):
            location = self._location(response)
            self.request("DELETE", location, scopes=scopes).close()

    def upload_blob(self, repo: str, digest: str, size: int, source: Callable[[], BinaryIO],
                    progress: Callable[[int], None] | None = None,
                    chunk_size: int | None = None) -> None:
        """Upload a blob: one PUT, or PATCH chunks then PUT when larger than ``chunk_size``."""
        scopes = self.push_scope(repo)
        chunk_size = chunk_size or self.options.chunk_size
        response = self.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes,
                                headers={"Content-Length": "0"}, content=b"")
        if response.status_code != 202:
            raise self.error(response, _what("POST", response.request.url))
        location = self._location(response)
        done = False
        try:
            with source() as f:
                if size > chunk_size:
                    location = self._upload_chunks(location, f, size, chunk_size, scopes,
                                                   progress)
                    body: bytes | Iterator[bytes] = b""
                    headers = {"Content-Length": "0"}
                    replayable = True
                else:
                    body = self._file_chunks(f, progress)
                    headers = {"Content-Length": str(size),
                               "Content-Type": "application/octet-stream"}
                    replayable = False
                url = str(httpx.URL(location).copy_merge_params({"digest": digest}))
                response = self.request("PUT", url, scopes=scopes, headers=headers, content=body,
                                        replayable=replayable)
            what = _what("PUT", response.request.url)
            if response.status_code == 400:
                errors = parse_error_body(response.read())
                if "DIGEST_INVALID" in {e.code for e in errors}:
                    raise VerificationError(f"{what}: {join_errors(errors)}", status=400,
                                            errors=errors)
            if response.status_code not in (201, 204):
                raise self.error(response, what)
            announced = response.headers.get("docker-content-digest")
            if announced and announced != digest:
                raise VerificationError(f"{what}: the registry stored {announced}, "
                                        f"expected {digest}")
            done = True
        finally:
            if not done:
                with suppress(RegistryError):
                    self.request("DELETE", location, scopes=scopes).close()

    @staticmethod
    def _file_chunks(f: BinaryIO, progress: Callable[[int], None] | None) -> Iterator[bytes]:
        while chunk := f.read(_CHUNK):
            yield chunk
            if progress:
                progress(len(chunk))

    def _upload_chunks(self, location: str, f: BinaryIO, size: int, chunk_size: int,
                       scopes: frozenset[str], progress: Callable[[int], None] | None) -> str:
        offset = 0
        while offset < size:
            chunk = f.read(min(chunk_size, size - offset))
            if not chunk:
                raise RegistryError(f"blob source ended after {offset} of {size} bytes")
            end = offset + len(chunk) - 1
            response = self.request("PATCH", location, scopes=scopes, content=chunk, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                "Content-Range": f"{offset}-{end}"})
            if response.status_code != 202:
                raise self.error(response, _what("PATCH", response.request.url))
            received = response.headers.get("range", "")
            if received and received.split("-")[-1] != str(end):
                raise RegistryError(f"{_what('PATCH', response.request.url)}: the registry "
                                    f"holds bytes {received}, sent up to {end}")
            location = self._location(response)
            offset += len(chunk)
            if progress:
                progress(len(chunk))
        return location

    # Listing ------------------------------------------------------------------------------

    def _paged(self, path: str, key: str, scopes: frozenset[str]) -> list[str]:
        items: list[str] = []
        url: str | None = path
        while url:
            response = self.request("GET", url, scopes=scopes)
            if response.status_code != 200:
                raise self.error(response, _what("GET", response.request.url))
            try:
                values = response.json().get(key) or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{_what('GET', response.request.url)}: not a JSON "
                                    "object") from None
            items.extend(v for v in values if isinstance(v, str))
            url = _next_link(response)
        return items

    def tags(self, repo: str) -> list[str]:
        """Every tag of ``repo`` (``/v2/<repo>/tags/list``, following pagination)."""
        return self._paged(f"/v2/{repo}/tags/list", "tags", self.pull_scope(repo))

    def catalog(self) -> list[str]:
        """Every repository of the registry (``/v2/_catalog``, following pagination)."""
        return self._paged("/v2/_catalog", "repositories", frozenset({"registry:catalog:*"}))


@contextmanager
def client_for(domain: str, options: RegistryOptions | None,
               client: RegistryClient | None = None) -> Iterator[RegistryClient]:
    """The caller's client if it passed one (left open), else a new one closed after use."""
    if client is not None:
        yield client
        return
    own = RegistryClient(domain, options)
    try:
        yield own
    finally:
        own.close()
