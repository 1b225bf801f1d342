"""A Docker token server (the `realm` of a Bearer challenge) for tests, on 127.0.0.1.

It issues RS256 JWTs as distribution's token auth expects (``iss``, ``aud``, ``access``,
the signing certificate in ``x5c``, that certificate as the registry's rootcertbundle).
Anonymous clients get ``pull`` on any repository; a known user gets what they ask for;
a wrong password gets 401. The key and certificate are made with the openssl CLI, which
also signs, so the tests need no crypto package.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(self, where: Path, *, service: str, issuer: str,
                 users: dict[str, str]) -> None:
        self.where = where
        self.service = service
        self.issuer = issuer
        self.users = users
        self.key = where / "token.key"
        self.cert = where / "token.crt"
        self.requests: list[dict[str, object]] = []
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=sampan test token issuer", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self._x5c = base64.b64encode(der).decode()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def token(self, subject: str, access: list[dict[str, object]]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True,
                                   capture_output=True).stdout
        return f"{signing_input}.{_b64(signature)}"

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, object]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            allowed = ["pull", "push", "*"] if user else ["pull"]
            granted = [a for a in wanted if a in allowed]
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        return access

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, doc: dict[str, object]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(name) != password:
                        with server._lock:
                            server.requests.append({"user": name, "denied": True})
                        self._answer(401, {"details": "incorrect username or password"})
                        return
                    user = name
                scopes = query.get("scope", [])
                with server._lock:
                    server.requests.append({"user": user, "scopes": scopes,
                                            "service": query.get("service", [""])[0]})
                token = server.token(user or "", server.grant(user, scopes))
                self._answer(200, {"token": token, "access_token": token, "expires_in": 300,
                                   "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                              time.gmtime())})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
