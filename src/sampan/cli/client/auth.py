"""Registry credentials for X-Registry-Auth, from docker's config.json ``auths``.

The engine's own credential module (sampan.registry.credentials) shares this file format
but imports the registry client package (httpx, about 200 ms); the CLI needs only to
read one entry and write one, so it does it here.
"""

from __future__ import annotations

import base64
import os

from ...oci import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INDEX_SERVER = "https://index.docker.io/v1/"
_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def domain_of(reference: str) -> str:
    """The registry of an image reference (docker.io when it names none)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def key_of(registry: str) -> str:
    return INDEX_SERVER if registry in _HUB or registry == INDEX_SERVER else registry


def _host(key: str) -> str:
    return key.split("://", 1)[-1].split("/", 1)[0]


def config_path(config_dir: str) -> str:
    return os.path.join(config_dir, "config.json")


def read_config(config_dir: str) -> dict[str, Any]:
    try:
        with open(config_path(config_dir), "rb") as f:
            doc = jsonio.loads(f.read())
    except FileNotFoundError:
        return {}
    return doc if isinstance(doc, dict) else {}


def write_config(config_dir: str, doc: dict[str, Any]) -> None:
    import json

    os.makedirs(config_dir, mode=0o700, exist_ok=True)
    path = config_path(config_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(doc, f, indent="\t")
        f.write("\n")
    os.replace(tmp, path)


def credentials(config_dir: str, registry: str) -> dict[str, str] | None:
    """{"username", "password", "serveraddress"} stored for ``registry``."""
    auths = read_config(config_dir).get("auths") or {}
    key = key_of(registry)
    for name, entry in auths.items():
        if (name == key or _host(name) == _host(key)) and isinstance(entry, dict):
            if entry.get("identitytoken"):
                return {"identitytoken": entry["identitytoken"], "serveraddress": key}
            encoded = entry.get("auth")
            if not encoded:
                return None
            user, _, password = base64.b64decode(encoded).decode().partition(":")
            return {"username": user, "password": password, "serveraddress": key}
    return None


def header(config_dir: str, reference: str) -> dict[str, str]:
    """The X-Registry-Auth header for pulling or pushing ``reference``."""
    creds = credentials(config_dir, domain_of(reference)) or {}
    encoded = base64.urlsafe_b64encode(jsonio.dumps(creds).encode()).decode()
    return {"X-Registry-Auth": encoded}
