"""A tiny registry on 127.0.0.1 that misbehaves on purpose (fault injection).

It serves manifests and blobs from dictionaries and can corrupt a blob (same size, other
bytes), cut a blob's first download short (the connection drops mid-body), announce a wrong
``Docker-Content-Digest``, slow every blob down (and count how many downloads overlap), and
it honours ``Range`` so that resumption can be checked.
Every request is recorded. Only what the real registry cannot be made to do is done here.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    wrong_digest_header: set[tuple[str, str]] = field(default_factory=set)
    cut_first: dict[str, int] = field(default_factory=dict)  # digest → bytes then drop
    blob_delay: float = 0.0  # seconds each blob GET waits before answering
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    blob_gets_in_flight: int = 0
    most_blob_gets_in_flight: int = 0


class FakeRegistry:
    def __init__(self) -> None:
        self.served = Served()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    def requests(self, method: str | None = None) -> list[tuple[str, str, str | None]]:
        with self._lock:
            return [r for r in self.served.requests if method is None or r[0] == method]

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      head: bool = False) -> None:
                self.send_response(status)
                self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if "Content-Length" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _not_found(self, code: str, head: bool) -> None:
                body = (b'{"errors":[{"code":"%s","message":"%s"}]}'
                        % (code.encode(), code.lower().replace("_", " ").encode()))
                self._send(404, body, {"Content-Type": "application/json"}, head)

            def _handle(self, head: bool) -> None:
                with fake._lock:
                    fake.served.requests.append((self.command, self.path,
                                                 self.headers.get("Range")))
                if self.path == "/v2/":
                    self._send(200, b"{}", {"Content-Type": "application/json"}, head)
                    return
                match = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/?]+)", self.path)
                if not match:
                    self._not_found("NAME_UNKNOWN", head)
                    return
                repo, kind, ref = match.groups()
                if kind == "manifests":
                    found = fake.served.manifests.get((repo, ref))
                    if found is None:
                        self._not_found("MANIFEST_UNKNOWN", head)
                        return
                    media_type, data = found
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    if (repo, ref) in fake.served.wrong_digest_header:
                        digest = "sha256:" + "0" * 64
                    self._send(200, data, {"Content-Type": media_type,
                                           "Docker-Content-Digest": digest}, head)
                    return
                blob = fake.served.blobs.get(ref)
                if blob is None:
                    self._not_found("BLOB_UNKNOWN", head)
                    return
                if head:
                    self._blob(blob, ref, head)
                    return
                served = fake.served
                with fake._lock:
                    served.blob_gets_in_flight += 1
                    served.most_blob_gets_in_flight = max(served.most_blob_gets_in_flight,
                                                          served.blob_gets_in_flight)
                try:
                    time.sleep(served.blob_delay)
                    self._blob(blob, ref, head)
                finally:
                    with fake._lock:
                        served.blob_gets_in_flight -= 1

            def _blob(self, blob: bytes, ref: str, head: bool) -> None:
                start = 0
                status = 200
                headers = {"Content-Type": "application/octet-stream",
                           "Accept-Ranges": "bytes"}
                wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if wanted:
                    start = int(wanted.group(1))
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(blob) - 1}/{len(blob)}"
                body = blob[start:]
                with fake._lock:
                    cut = fake.served.cut_first.pop(ref, None)
                if cut is not None and not head:
                    headers["Content-Length"] = str(len(body))
                    self._send(status, b"", headers, head=True)
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(status, body, headers, head)

            def do_GET(self) -> None:
                self._handle(head=False)

            def do_HEAD(self) -> None:
                self._handle(head=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
