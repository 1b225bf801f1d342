"""ps and images: docker's tables, placeholders and ``--format``."""

from __future__ import annotations

import time

from .... import humanize
from ..api import filters_param
from ..flags import BOOL, INT, LIST, STR, Opt
from . import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli

PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Ports}}\t{{.Names}}")
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM"}


def _go_quote(text: str) -> str:
    """strconv.Quote for the printable text a command is."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    out.append('"')
    return "".join(out)


def display_ports(ports: list[dict[str, Any]]) -> str:
    """docker's DisplayablePorts: "0.0.0.0:8080->80/tcp, 443/tcp", consecutive ports
    grouped into ranges."""
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    for p in sorted(ports or [], key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""),
                                                p.get("IP", ""), p.get("PublicPort", 0))):
        ip = p.get("IP", "")
        proto = p.get("Type", "tcp")
        if p.get("PublicPort"):
            host = f"[{ip}]" if ":" in ip else ip
            key = f"{host}:{p['PublicPort']}->{p['PrivatePort']}/{proto}"
            if key not in groups:
                order.append(key)
                groups[key] = []
            continue
        key = f"/{proto}"
        if key not in groups:
            order.append(key)
            groups[key] = []
        groups[key].append(p["PrivatePort"])
    out: list[str] = []
    for key in order:
        if not key.startswith("/"):
            out.append(key)
            continue
        numbers = sorted(set(groups[key]))
        start = prev = numbers[0]
        for n in [*numbers[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            out.append(f"{start}{key}" if start == prev else f"{start}-{prev}{key}")
            if n is not None:
                start = prev = n
    return ", ".join(out)


class ContainerRow:
    """docker's ContainerContext placeholders over one /containers/json entry."""

    def __init__(self, c: dict[str, Any], trunc: bool, now: float) -> None:
        self.c, self.trunc, self.now = c, trunc, now

    def as_json(self) -> dict[str, Any]:
        return {k: None if k == "Platform" else getattr(self, k) for k in sorted(PS_HEADERS)}

    @property
    def ID(self) -> str:
        return humanize.short_id(self.c["Id"]) if self.trunc else self.c["Id"]

    @property
    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            names = [n for n in names if "/" not in n][:1] or names[:1]
        return ",".join(names)

    @property
    def Image(self) -> str:
        image = self.c.get("Image") or "<no image>"
        if self.trunc and image.startswith("sha256:"):
            return humanize.short_id(image)
        if self.trunc and "@" in image:
            return image.split("@", 1)[0]
        return image

    @property
    def Command(self) -> str:
        command = self.c.get("Command") or ""
        return _go_quote(humanize.ellipsis(command, 20) if self.trunc else command)

    @property
    def CreatedAt(self) -> str:
        return humanize.go_time(self.c.get("Created", 0))

    @property
    def RunningFor(self) -> str:
        return humanize.since(self.c.get("Created", 0), self.now)

    @property
    def Ports(self) -> str:
        return display_ports(self.c.get("Ports") or [])

    @property
    def State(self) -> str:
        return self.c.get("State") or ""

    @property
    def Status(self) -> str:
        return self.c.get("Status") or ""

    @property
    def Size(self) -> str:
        rw = humanize.size(self.c.get("SizeRw") or 0)
        virtual = self.c.get("SizeRootFs") or 0
        return f"{rw} (virtual {humanize.size(virtual)})" if virtual > 0 else rw

    @property
    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in (self.c.get("Labels") or {}).items())

    def Label(self, name: str) -> str:
        return (self.c.get("Labels") or {}).get(name, "")

    @property
    def Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source", "")
            if self.trunc and not m.get("Name"):
                name = humanize.ellipsis(name, 15)
            names.append(name)
        return ",".join(names)

    @property
    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    @property
    def Networks(self) -> str:
        nets = ((self.c.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(nets))


PS_OPTS = [Opt("a,all", BOOL, "Show all containers (default shows just running)"),
           Opt("f,filter", LIST, "Filter output based on conditions provided"),
           Opt("format", STR, "Format output using a custom template"),
           Opt("n,last", INT, "Show n last created containers (includes all states)"),
           Opt("l,latest", BOOL, "Show the latest created container (includes all states)"),
           Opt("no-trunc", BOOL, "Don't truncate output"),
           Opt("q,quiet", BOOL, "Only display container IDs"),
           Opt("s,size", BOOL, "Display total file sizes")]


def ps(cli: Cli, argv: list[str]) -> int:
    p = parse("ps", "[OPTIONS]", "List containers", PS_OPTS, argv, 0, 0)
    if p is None:
        return 0
    limit = 1 if p.latest else (p.last if p.last is not None and p.last > 0 else None)
    fmt = p.format or ""
    size = p.size or (".Size" in fmt)
    params = {"all": True if p.all or limit else None, "limit": limit,
              "size": True if size else None, "filters": filters_param(p.filter)}
    containers = cli.client.get("/containers/json", params) or []
    trunc = not p.no_trunc
    now = time.time()
    rows = [ContainerRow(c, trunc, now) for c in containers]
    if p.quiet and not p.format:
        fmt = "{{.ID}}"
    elif not fmt or fmt == "table":
        fmt = PS_TABLE + ("\t{{.Size}}" if p.size else "")
    from ..output import render

    render(fmt, rows, PS_HEADERS)
    return 0


IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGEST_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                       "{{.CreatedSince}}\t{{.Size}}")
IMAGES_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG",
                  "Digest": "DIGEST", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                  "Size": "SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
                  "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}


class ImageRow:
    """docker's ImageContext placeholders: one row per repository:tag."""

    def __init__(self, image: dict[str, Any], repo: str, tag: str, digest: str,
                 trunc: bool, now: float) -> None:
        self.i, self.Repository, self.Tag, self.Digest = image, repo, tag, digest
        self.trunc, self.now = trunc, now

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(IMAGES_HEADERS)}

    @property
    def ID(self) -> str:
        return humanize.short_id(self.i["Id"]) if self.trunc else self.i["Id"]

    @property
    def CreatedSince(self) -> str:
        created = self.i.get("Created") or 0
        return humanize.since(created, self.now) if created > 0 else "N/A"

    @property
    def CreatedAt(self) -> str:
        return humanize.go_time(self.i.get("Created") or 0)

    @property
    def Size(self) -> str:
        return humanize.size(self.i.get("Size") or 0)

    @property
    def VirtualSize(self) -> str:
        return humanize.human_size(self.i.get("Size") or 0)

    @property
    def SharedSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        return "N/A" if shared is None or shared < 0 else humanize.human_size(shared)

    @property
    def UniqueSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        if shared is None or shared < 0:
            return "N/A"
        return humanize.human_size((self.i.get("Size") or 0) - shared)

    @property
    def Containers(self) -> str:
        n = self.i.get("Containers", -1)
        return "N/A" if n is None or n < 0 else str(n)


def image_rows(images: list[dict[str, Any]], trunc: bool, digests: bool,
               ) -> list[ImageRow]:
    """docker's rows: one per repository:tag (per digest too with --digests), then one
    for each repository known only by digest; "<none>" for a dangling image."""
    now = time.time()
    rows = []
    for image in images:
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        by_digest: dict[str, list[str]] = {}
        for ref in image.get("RepoDigests") or []:
            if ref != "<none>@<none>":
                repo, _, digest = ref.partition("@")
                by_digest.setdefault(repo, []).append(digest)
        if not tags and not by_digest:
            rows.append(ImageRow(image, "<none>", "<none>", "<none>", trunc, now))
            continue
        for ref in tags:
            repo, _, tag = ref.rpartition(":")
            found = by_digest.pop(repo, [])  # not a row of its own: the tag's
            for digest in (found if digests else []) or ["<none>"]:
                rows.append(ImageRow(image, repo, tag, digest, trunc, now))
        for repo, found in by_digest.items():
            for digest in found if digests else [""]:
                rows.append(ImageRow(image, repo, "<none>", digest, trunc, now))
    return rows


IMAGES_OPTS = [Opt("a,all", BOOL, "Show all images (default hides intermediate images)"),
               Opt("digests", BOOL, "Show digests"),
               Opt("f,filter", LIST, "Filter output based on conditions provided"),
               Opt("format", STR, "Format output using a custom template"),
               Opt("no-trunc", BOOL, "Don't truncate output"),
               Opt("q,quiet", BOOL, "Only show image IDs"), Opt("tree")]


def images(cli: Cli, argv: list[str]) -> int:
    p = parse("images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", IMAGES_OPTS, argv,
              0, 1)
    if p is None:
        return 0
    filters = list(p.filter or [])
    if p.args:
        filters.append(f"reference={p.args[0]}")
    found = cli.client.get("/images/json", {"all": p.all or None,
                                            "filters": filters_param(filters)}) or []
    rows = image_rows(found, not p.no_trunc, p.digests)
    from ..output import render

    fmt = p.format or ""
    if p.quiet and not fmt:
        fmt = "{{.ID}}"  # a line per row, as docker: an image with two tags twice
    elif not fmt or fmt == "table":
        fmt = IMAGES_DIGEST_TABLE if p.digests else IMAGES_TABLE
    render(fmt, rows, IMAGES_HEADERS)
    return 0
