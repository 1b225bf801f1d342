"""`system df -v`: docker's per-object tables (images, containers, local volumes, build
cache), each a table of its own under its title, with the rows of `images`, `ps` and
`volume ls` as docker's verbose disk-usage formatter makes them."""

from __future__ import annotations

import sys
import time

from .... import humanize
from .listing import IMAGES_HEADERS, PS_HEADERS, ContainerRow, ImageRow
from .volumes import LS_HEADERS, VolumeRow

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IMAGE_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
               "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}")
CONTAINER_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
                   "{{.RunningFor}}\t{{.Status}}\t{{.Names}}")
VOLUME_TABLE = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
CACHE_TABLE = ("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t"
               "{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}")
CACHE_HEADERS = {"ID": "CACHE ID", "Parent": "PARENT", "CacheType": "CACHE TYPE",
                 "Size": "SIZE", "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                 "UsageCount": "USAGE", "InUse": "IN USE", "Shared": "SHARED",
                 "Description": "DESCRIPTION"}


class CacheRow:
    """docker's buildCacheContext over one build cache record."""

    def __init__(self, record: dict[str, Any], trunc: bool, now: float) -> None:
        self.r, self.trunc, self.now = record, trunc, now

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(CACHE_HEADERS)}

    @property
    def ID(self) -> str:
        ident = self.r.get("ID") or ""
        ident = ident[:12] if self.trunc else ident
        return ident + "*" if self.r.get("InUse") else ident

    @property
    def Parent(self) -> str:
        parent = ", ".join(self.r.get("Parents") or [])
        return parent[:12] if self.trunc else parent

    @property
    def CacheType(self) -> str:
        return self.r.get("Type") or ""

    @property
    def Description(self) -> str:
        return self.r.get("Description") or ""

    @property
    def Size(self) -> str:
        return humanize.size(self.r.get("Size") or 0)

    @property
    def CreatedSince(self) -> str:
        return humanize.since(humanize.parse_time(self.r.get("CreatedAt") or ""), self.now)

    @property
    def LastUsedSince(self) -> str:
        used = self.r.get("LastUsedAt")
        return humanize.since(humanize.parse_time(used), self.now) if used else ""

    @property
    def UsageCount(self) -> str:
        return str(self.r.get("UsageCount") or 0)

    @property
    def InUse(self) -> str:
        return "true" if self.r.get("InUse") else "false"

    @property
    def Shared(self) -> str:
        return "true" if self.r.get("Shared") else "false"


def _dangling(image: dict[str, Any]) -> bool:
    return (image.get("RepoTags") or []) == ["<none>:<none>"] and \
        (image.get("RepoDigests") or []) == ["<none>@<none>"]


def image_rows(images: list[dict[str, Any]], trunc: bool, now: float) -> list[ImageRow]:
    """One row an image, named by its first tag (docker's verbose df)."""
    rows = []
    for image in images:
        repo = tag = "<none>"
        tags = image.get("RepoTags") or []
        if tags and not _dangling(image):
            named, _, tagged = tags[0].rpartition(":")
            if named and "/" not in tagged:
                repo, tag = named, tagged
        rows.append(ImageRow(image, repo, tag, "", trunc, now))
    return rows


def _cache_order(record: dict[str, Any]) -> tuple[int, float, str]:
    """docker's buildCacheSort: never used first, then least recently used, then ID."""
    used = record.get("LastUsedAt")
    return (1 if used else 0, humanize.parse_time(used) if used else 0.0,
            record.get("ID") or "")


class Usage:
    """What a verbose ``--format`` template sees: .Images .Containers .Volumes
    .BuildCache."""

    def __init__(self, d: dict[str, Any], trunc: bool) -> None:
        now = time.time()
        self.Images = image_rows(d.get("Images") or [], trunc, now)
        # the virtual size is not shown here
        self.Containers = [ContainerRow({**c, "SizeRootFs": 0}, trunc, now)
                           for c in d.get("Containers") or []]
        self.Volumes = [VolumeRow(v) for v in d.get("Volumes") or []]
        self.BuildCache = [CacheRow(b, trunc, now)
                           for b in sorted(d.get("BuildCache") or [], key=_cache_order)]


def verbose(d: dict[str, Any], fmt: str | None) -> None:
    from ..output import render

    out = sys.stdout
    if fmt and fmt != "table":
        usage = Usage(d, trunc=fmt.startswith("table"))
        render(fmt, [usage])
        return
    usage = Usage(d, trunc=True)
    cache_total = sum(b.get("Size") or 0 for b in d.get("BuildCache") or [])
    out.write("Images space usage:\n\n")
    render(IMAGE_TABLE, usage.Images, IMAGES_HEADERS)
    out.write("\nContainers space usage:\n\n")
    render(CONTAINER_TABLE, usage.Containers, PS_HEADERS)
    out.write("\nLocal Volumes space usage:\n\n")
    render(VOLUME_TABLE, usage.Volumes, LS_HEADERS)
    out.write(f"\nBuild cache usage: {humanize.human_size(cache_total)}\n\n")
    render(CACHE_TABLE, usage.BuildCache, CACHE_HEADERS)
