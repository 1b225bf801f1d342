"""The content-addressed blob store (what containerd calls the content store)."""

from .store import (
    BlobNotFound,
    ContentError,
    ContentStore,
    ContentWriter,
    DigestMismatch,
    IngestLocked,
    ShortBlob,
    SizeMismatch,
)

__all__ = ["BlobNotFound", "ContentError", "ContentStore", "ContentWriter", "DigestMismatch",
           "IngestLocked", "ShortBlob", "SizeMismatch"]
