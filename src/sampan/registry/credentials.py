"""Credentials kept as Docker keeps them: ``auths`` of a ``config.json``.

Sharing the file format means `docker login` and `sampan login` see each other's logins.
Only the plain ``auths`` store is read and written; credential helpers (``credsStore``,
``credHelpers``) are not run.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from ..images.reference import DEFAULT_DOMAIN
from .errors import RegistryError

# The key Docker files Docker Hub credentials under (registry.IndexServer).
INDEX_SERVER = "https://index.docker.io/v1/"
_HUB_NAMES = {DEFAULT_DOMAIN, "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


@dataclass(frozen=True)
class Credentials:
    """A user name and password, or an identity (refresh) token from an OAuth login."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token)

    def __repr__(self) -> str:  # never print a password into a log
        return f"Credentials(username={self.username!r}, password=***)"


def default_config_path() -> str:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (Docker's lookup)."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"),
                                                                 ".docker")
    return os.path.join(directory, "config.json")


def config_key(domain: str) -> str:
    """The ``auths`` key for a registry domain (Docker Hub's is a URL, others host:port)."""
    return INDEX_SERVER if domain in _HUB_NAMES else domain


def _hostname(key: str) -> str:
    """registry.ConvertToHostname: ``https://host:port/v1/`` → ``host:port``."""
    for scheme in ("http://", "https://"):
        if key.startswith(scheme):
            key = key[len(scheme):]
            break
    return key.split("/", 1)[0]


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RegistryError(f"loading config file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"loading config file {path}: not a JSON object")
    return doc


def _decode_entry(key: str, entry: Any, path: str) -> Credentials:
    if not isinstance(entry, dict):
        raise RegistryError(f"{path}: auths[{key!r}] is not an object")
    username, password = entry.get("username") or "", entry.get("password") or ""
    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryError(f"{path}: auths[{key!r}].auth is not valid base64") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryError(f"{path}: auths[{key!r}].auth is not user:password")
    return Credentials(username=username, password=password,
                       identity_token=entry.get("identitytoken") or "")


def load_credentials(domain: str, config_path: str | None = None) -> Credentials | None:
    """The stored credentials for ``domain`` (a reference's domain), if any."""
    path = config_path or default_config_path()
    auths = _read(path).get("auths") or {}
    if not isinstance(auths, dict):
        raise RegistryError(f"{path}: auths is not an object")
    wanted = config_key(domain)
    if wanted in auths:
        return _decode_entry(wanted, auths[wanted], path) or None
    host = _hostname(wanted)
    for key, entry in auths.items():  # "https://host:port" and the like name the same host
        if _hostname(key) == host:
            return _decode_entry(key, entry, path) or None
    return None


def _write(path: str, doc: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config.json.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent="\t")
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def store_credentials(domain: str, credentials: Credentials,
                      config_path: str | None = None) -> str:
    """Save credentials as `docker login` does (base64 ``auth``); the file written."""
    path = config_path or default_config_path()
    doc = _read(path)
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise RegistryError(f"{path}: auths is not an object")
    host = _hostname(config_key(domain))
    for key in [k for k in auths if _hostname(k) == host]:
        del auths[key]
    entry: dict[str, str] = {}
    if credentials.identity_token:
        entry["identitytoken"] = credentials.identity_token
    else:
        entry["auth"] = base64.b64encode(
            f"{credentials.username}:{credentials.password}".encode()).decode()
    auths[config_key(domain)] = entry
    _write(path, doc)
    return path


def erase_credentials(domain: str, config_path: str | None = None) -> bool:
    """Forget the credentials of ``domain`` (`docker logout`); whether there were any."""
    path = config_path or default_config_path()
    doc = _read(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    host = _hostname(config_key(domain))
    keys = [k for k in auths if _hostname(k) == host]
    for key in keys:
        del auths[key]
    if keys:
        _write(path, doc)
    return bool(keys)
