"""Registry authentication: the ``WWW-Authenticate`` challenge, Basic and Bearer tokens.

A registry says how it wants to be authenticated in the 401 answer to ``GET /v2/``: Basic
(send the user name and password with every request) or Bearer (fetch a token for the
wanted scopes from the ``realm`` token server, anonymously or with credentials, and send
that). Tokens are cached per set of scopes until shortly before they expire, so a pull of
eleven layers asks the token server once.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field

import httpx

from .credentials import Credentials
from .errors import RegistryError, Unauthorized, join_errors, parse_error_body

_EXPIRY_MARGIN = 10.0  # seconds before its end that a token is no longer used
_DEFAULT_EXPIRY = 60.0  # the token spec's default lifetime


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: scheme (lowercase) and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` values (RFC 7235: ``scheme k=v, k="quoted", …``)."""
    out: list[Challenge] = []
    for text in values:
        i, n = 0, len(text)
        current: Challenge | None = None
        while i < n:
            i = _skip_space(text, i)
            start = i
            while i < n and text[i] not in " \t,=":
                i += 1
            token = text[start:i]
            i = _skip_space(text, i)
            if i < n and text[i] == "=" and token and current is not None:
                i = _skip_space(text, i + 1)
                if i < n and text[i] == '"':
                    i += 1
                    chars = []
                    while i < n and text[i] != '"':
                        if text[i] == "\\" and i + 1 < n:
                            i += 1
                        chars.append(text[i])
                        i += 1
                    i += 1
                    value = "".join(chars)
                else:
                    start = i
                    while i < n and text[i] not in " \t,":
                        i += 1
                    value = text[start:i]
                current.params[token.lower()] = value
            elif token:
                current = Challenge(token.lower())
                out.append(current)
            i = _skip_space(text, i)
            if i < n and text[i] == ",":
                i += 1
            elif i < n and text[i] != "=" and token == "":
                i += 1  # stray character: skip it rather than loop
    return out


def repository_scope(path: str, actions: str) -> str:
    """A token scope: ``repository:library/busybox:pull`` (actions ``pull`` or ``pull,push``)."""
    return f"repository:{path}:{actions}"


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Authorization headers for one registry, from its challenge and the credentials."""

    def __init__(self, http: httpx.Client, credentials: Credentials | None) -> None:
        self._http = http
        self.credentials = credentials
        self.challenge: Challenge | None = None
        self._tokens: dict[frozenset[str], _Token] = {}
        self._lock = threading.Lock()
        self._fetching: dict[frozenset[str], threading.Lock] = {}

    def set_challenges(self, values: list[str]) -> None:
        """Remember how the registry wants to be authenticated (from a 401)."""
        challenges = parse_challenges(values)
        for scheme in ("bearer", "basic"):  # prefer tokens, as Docker does
            for challenge in challenges:
                if challenge.scheme == scheme:
                    with self._lock:
                        if challenge != self.challenge:
                            self._tokens.clear()
                        self.challenge = challenge
                    return

    def _basic(self) -> str:
        creds = self.credentials or Credentials()
        raw = f"{creds.username}:{creds.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def headers(self, scopes: frozenset[str], what: str) -> dict[str, str]:
        """The ``Authorization`` header for a request needing ``scopes`` (``what`` for
        messages: ``Get "URL"``)."""
        challenge = self.challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            if not self.credentials or not self.credentials.username:
                raise Unauthorized(f"{what}: no basic auth credentials", status=401)
            return {"Authorization": self._basic()}
        if challenge.scheme == "bearer":
            return {"Authorization": f"Bearer {self.token(scopes)}"}
        raise Unauthorized(f"{what}: unsupported authentication scheme "
                           f"{challenge.scheme!r} (Basic and Bearer are)", status=401)

    def invalidate(self, scopes: frozenset[str]) -> None:
        with self._lock:
            self._tokens.pop(scopes, None)

    def token(self, scopes: frozenset[str]) -> str:
        """A bearer token for ``scopes``, from the cache or the token server."""
        with self._lock:
            cached = self._tokens.get(scopes)
            if cached is not None and cached.expires > time.monotonic():
                return cached.value
            fetch_lock = self._fetching.setdefault(scopes, threading.Lock())
        with fetch_lock:  # parallel layer downloads wait for one fetch, not make many
            with self._lock:
                cached = self._tokens.get(scopes)
                if cached is not None and cached.expires > time.monotonic():
                    return cached.value
            token = self._fetch(scopes)
            with self._lock:
                self._tokens[scopes] = token
            return token.value

    def _fetch(self, scopes: frozenset[str]) -> _Token:
        challenge = self.challenge
        assert challenge is not None
        realm = challenge.realm
        if not realm:
            raise RegistryError("the registry's Bearer challenge names no token realm")
        creds = self.credentials
        params: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", s) for s in sorted(scopes))
        headers = {}
        try:
            if creds and creds.identity_token:
                # OAuth2 refresh-token grant, as Docker does after an identity-token login.
                form = dict(params[:1])
                form.update(grant_type="refresh_token", refresh_token=creds.identity_token,
                            client_id="sampan", scope=" ".join(sorted(scopes)))
                response = self._http.post(realm, data=form)
            else:
                if creds:
                    params.append(("account", creds.username))
                    headers["Authorization"] = self._basic()
                response = self._http.get(realm, params=tuple(params),
                                          headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f'Get "{realm}": {exc}') from None
        if response.status_code in (401, 403):
            detail = join_errors(parse_error_body(response.content))
            if not detail or detail.startswith("unauthorized: unauthorized"):
                detail = ("unauthorized: incorrect username or password" if creds
                          else "unauthorized: authentication required")
            elif not detail.startswith(("unauthorized", "denied")):
                detail = f"unauthorized: {detail}"
            raise Unauthorized(f'Get "{realm}": {detail}', status=response.status_code)
        if response.status_code != 200:
            raise RegistryError(f'Get "{realm}": token server answered '
                                f"{response.status_code} {response.reason_phrase}",
                                status=response.status_code)
        try:
            doc = response.json()
            value = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or _DEFAULT_EXPIRY)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value:
            raise RegistryError(f'Get "{realm}": the token server sent no token')
        lifetime = max(lifetime, _DEFAULT_EXPIRY)
        return _Token(value, time.monotonic() + lifetime - _EXPIRY_MARGIN)
