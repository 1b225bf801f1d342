"""The Engine API as the commands call it: JSON in and out, errors as docker prints them.

Paths are unversioned: sampand (and dockerd) serve them at their newest API version, and
that saves the `_ping` round trip the Go CLI makes to negotiate.
"""

from __future__ import annotations

from ...oci import jsonio
from . import http

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from collections.abc import Iterator
    from typing import Any

DEFAULT_HOST = "unix:///run/sampan/sampan.sock"


class APIError(Exception):
    """The daemon refused: docker prints "Error response from daemon: <message>"."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class DaemonUnreachable(Exception):
    """Nothing answers on the socket."""


def error_of(response: http.Response) -> APIError:
    body = response.read()
    message = body.decode(errors="replace").strip()
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            message = str(jsonio.loads(body).get("message", message))
        except (ValueError, AttributeError):
            pass
    return APIError(response.status, message or response.reason)


class Client:
    def __init__(self, host: str, autostart: bool = False) -> None:
        self.host = host
        self.autostart = autostart
        self._started = False

    def _send(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str] | None) -> tuple[_socket.socket, http.Reader]:
        try:
            return http.send(self.host, method, path, body, headers)
        except http.ConnectError as exc:
            if self.autostart and not self._started:
                from . import autostart

                self._started = True
                autostart.start_daemon(self.host)
                return http.send(self.host, method, path, body, headers)
            raise DaemonUnreachable(self._unreachable(exc)) from None

    def _unreachable(self, exc: OSError) -> str:
        return (f"Cannot connect to the Docker daemon at {self.host}. Is the docker daemon "
                f"running?" if exc.errno in (2, 111) else f"{self.host}: {exc}")

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> http.Response:
        """Send a request; an answer of 400 or more raises APIError."""
        data = raw
        hdrs = dict(headers or {})
        if body is not None:
            data = jsonio.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif data is None and method in ("POST", "PUT"):
            data = b""
        response = http.receive(*self._send(method, path + http.query_string(params),
                                            data, hdrs))
        response.head = method == "HEAD"
        if response.status >= 400:
            raise error_of(response)
        return response

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, params).json()

    def post(self, path: str, params: dict[str, Any] | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> Any:
        return self.call("POST", path, params, body, headers).json()

    def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("DELETE", path, params).json()

    def upload(self, method: str, path: str, params: dict[str, Any] | None,
               chunks: Iterator[bytes], headers: dict[str, str] | None = None,
               ) -> http.Response:
        """A request with a streamed body (load, import, cp into a container)."""
        try:
            sent = http.send_stream(self.host, method, path + http.query_string(params),
                                    chunks, headers)
        except http.ConnectError as exc:
            raise DaemonUnreachable(self._unreachable(exc)) from None
        response = http.receive(*sent)
        if response.status >= 400:
            raise error_of(response)
        return response

    def hijack(self, path: str, params: dict[str, Any] | None = None, body: Any = None,
               ) -> http.Response:
        """POST asking for the connection upgrade; the answer's socket is then raw stdio
        (its reader may already hold the first bytes)."""
        data = jsonio.dumps(body).encode() if body is not None else b""
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = http.receive(*self._send("POST", path + http.query_string(params), data,
                                            headers))
        if response.status >= 400:
            raise error_of(response)
        return response

    def wait_later(self, container: str, condition: str) -> Any:
        """Register a wait now (the daemon answers the headers once it is registered, so
        a start that follows cannot outrun it); a callable reading its result later."""
        response = http.receive(*self._send(
            "POST", f"/containers/{container}/wait"
            + http.query_string({"condition": condition}), b"", None))
        if response.status >= 400:
            raise error_of(response)
        return response.json


def filters_param(items: list[str] | None) -> str | None:
    """``--filter k=v`` flags as the API's JSON filters ({"k": {"v": true}})."""
    if not items:
        return None
    out: dict[str, dict[str, bool]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            from .flags import UsageError

            raise UsageError(f"invalid argument \"{item}\" for \"-f, --filter\" flag: bad "
                             "format of filter (expected name=value)")
        out.setdefault(key.strip().lower(), {})[value] = True
    return jsonio.dumps(out)
