"""`docker login`, `docker logout` and `docker search` against a registry.

Login checks the credentials the way the registry will use them (a Basic request to
``/v2/``, or a token from its token server) before saving them to config.json, so a typo
is reported at login rather than at the next pull.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import httpx

from ..images.reference import DEFAULT_DOMAIN
from .client import RegistryClient
from .credentials import Credentials, erase_credentials, store_credentials
from .errors import RegistryConnectionError, RegistryError, Unauthorized
from .options import RegistryOptions

HUB_SEARCH_URL = "https://index.docker.io/v1/search"


def login(domain: str, credentials: Credentials, *, options: RegistryOptions | None = None,
          save: bool = True) -> str:
    """Check ``credentials`` against ``domain`` and store them; Docker's answer."""
    options = replace(options or RegistryOptions(), credentials=credentials)
    with RegistryClient(domain or DEFAULT_DOMAIN, options) as client:
        base = client.ping()
        challenge = client.auth.challenge
        if challenge is not None and challenge.scheme == "basic":
            response = client.request("GET", "/v2/", scopes=frozenset())
            if response.status_code != 200:
                raise Unauthorized(f"login attempt to {base}/v2/ failed with status: "
                                   f"{response.status_code} {response.reason_phrase}",
                                   status=response.status_code)
        elif challenge is not None:
            client.auth.token(frozenset())
    if save:
        store_credentials(domain or DEFAULT_DOMAIN, credentials, options.config_path)
    return "Login Succeeded"


def logout(domain: str, *, options: RegistryOptions | None = None) -> str:
    """Forget the stored credentials of ``domain``; Docker's answer."""
    options = options or RegistryOptions()
    domain = domain or DEFAULT_DOMAIN
    if not erase_credentials(domain, options.config_path):
        return f"Not logged in to {domain}"
    return f"Removing login credentials for {domain}"


@dataclass(frozen=True)
class SearchResult:
    """One line of `docker search` (the fields of GET /images/search)."""

    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False

    def as_docker(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "star_count": self.star_count, "is_official": self.is_official,
                "is_automated": self.is_automated}


def search(term: str, domain: str = DEFAULT_DOMAIN, *, limit: int = 25,
           options: RegistryOptions | None = None) -> list[SearchResult]:
    """Repositories matching ``term``: Docker Hub's search API for docker.io, the
    ``/v2/_catalog`` of any other registry, filtered by substring."""
    options = options or RegistryOptions()
    if domain == DEFAULT_DOMAIN:
        try:
            with httpx.Client(timeout=options.timeout,
                              headers={"User-Agent": options.user_agent}) as http:
                response = http.get(HUB_SEARCH_URL, params={"q": term, "n": str(limit)})
        except httpx.TransportError as exc:
            raise RegistryConnectionError(f'Get "{HUB_SEARCH_URL}": {exc}') from None
        if response.status_code != 200:
            raise RegistryError(f'Get "{HUB_SEARCH_URL}": unexpected status '
                                f"{response.status_code}", status=response.status_code)
        out = []
        for item in (response.json().get("results") or [])[:limit]:
            out.append(SearchResult(name=str(item.get("name", "")),
                                    description=str(item.get("description") or ""),
                                    star_count=int(item.get("star_count") or 0),
                                    is_official=bool(item.get("is_official")),
                                    is_automated=bool(item.get("is_automated"))))
        return out
    with RegistryClient(domain, options) as client:
        names = client.catalog()
    wanted = term.lower()
    return [SearchResult(name=f"{domain}/{n}") for n in sorted(names) if wanted in n.lower()
            ][:limit]
