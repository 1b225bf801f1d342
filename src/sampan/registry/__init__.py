"""The registry client: Docker Registry HTTP API v2 / OCI distribution, pull and push.

``pull`` and ``push`` move images between a registry and the image store
(``sampan.images.ImageStore``); ``RegistryClient`` is the lower-level API of one registry;
``login``/``logout``/``search`` are the account operations; ``RegistryOptions`` holds TLS,
insecure-registry, credential and concurrency settings.
"""

from .account import SearchResult, login, logout, search
from .client import FetchedManifest, RegistryClient
from .credentials import (
    Credentials,
    default_config_path,
    erase_credentials,
    load_credentials,
    store_credentials,
)
from .errors import (
    ErrorInfo,
    ManifestUnknown,
    NotFound,
    RegistryConnectionError,
    RegistryError,
    Unauthorized,
    UnsupportedManifest,
    VerificationError,
)
from .options import RegistryOptions, is_insecure
from .progress import ProgressCallback, ProgressEvent
from .pull import PullResult, pull
from .push import PushResult, push

__all__ = ["Credentials", "ErrorInfo", "FetchedManifest", "ManifestUnknown", "NotFound",
           "ProgressCallback", "ProgressEvent", "PullResult", "PushResult", "RegistryClient",
           "RegistryConnectionError", "RegistryError", "RegistryOptions", "SearchResult",
           "Unauthorized", "UnsupportedManifest", "VerificationError", "default_config_path",
           "erase_credentials", "is_insecure", "load_credentials", "login", "logout", "pull",
           "push", "search", "store_credentials"]
