"""Image commands: pull, push, tag, rmi, save, load, import, history, inspect, prune."""

from __future__ import annotations

import os
import sys

from .... import humanize
from ..errors import CommandError
from ..flags import BOOL, LIST, STR, Opt
from . import confirm, each, parse
from .run import split_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from ..main import Cli


def full_name(reference: str) -> str:
    """docker.io/library/busybox:latest for busybox (reference.FamiliarString's inverse)."""
    from ..auth import domain_of

    name, tag = split_reference(reference)
    sep = "@" if tag.startswith("sha256:") else ":"
    if domain_of(name) == "docker.io" and not name.startswith("docker.io/"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    return f"{name}{sep}{tag}"


PULL_OPTS = [Opt("a,all-tags", BOOL, "Download all tagged images in the repository"),
             Opt("disable-content-trust", BOOL, default=True), Opt("platform", STR),
             Opt("q,quiet", BOOL, "Suppress verbose output")]


def pull(cli: Cli, argv: list[str]) -> int:
    p = parse("pull", "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry",
              PULL_OPTS, argv, 1, 1)
    if p is None:
        return 0
    from .. import auth, progress

    image = p.args[0]
    name, tag = split_reference(image)
    if p.all_tags:
        tag = ""
    elif image == name and "@" not in image and not p.quiet:
        print("Using default tag: latest")
    response = cli.client.call("POST", "/images/create",
                               {"fromImage": name, "tag": tag or None,
                                "platform": p.platform},
                               headers=auth.header(cli.config_dir, image))
    messages = response.json_stream()
    if p.quiet:
        for message in messages:
            if message.get("error"):
                raise CommandError(message["error"])
    else:
        progress.show(messages)
    print(full_name(name).rsplit(":", 1)[0] if p.all_tags else full_name(image))
    return 0


def push(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("a,all-tags", BOOL, "Push all tags of an image to the repository"),
            Opt("disable-content-trust", BOOL, default=True), Opt("platform", STR),
            Opt("q,quiet", BOOL, "Suppress verbose output")]
    p = parse("push", "[OPTIONS] NAME[:TAG]", "Upload an image to a registry", opts, argv,
              1, 1)
    if p is None:
        return 0
    from .. import auth, progress

    image = p.args[0]
    name, tag = split_reference(image)
    if p.all_tags:
        tag = ""
    elif image == name:
        print("Using default tag: latest")
    response = cli.client.call("POST", f"/images/{name}/push",
                               {"tag": tag or None, "platform": p.platform},
                               headers=auth.header(cli.config_dir, image))
    messages = response.json_stream()
    if p.quiet:
        for message in messages:
            if message.get("error"):
                raise CommandError(message["error"])
        print(full_name(image))
    else:
        progress.show(messages)
    return 0


def tag(cli: Cli, argv: list[str]) -> int:
    p = parse("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE "
              "that refers to SOURCE_IMAGE", [], argv, 2, 2)
    if p is None:
        return 0
    repo, new_tag = split_reference(p.args[1])
    cli.client.call("POST", f"/images/{p.args[0]}/tag", {"repo": repo, "tag": new_tag}).read()
    return 0


def rmi(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("f,force", BOOL, "Force removal of the image"),
            Opt("no-prune", BOOL, "Do not delete untagged parents"), Opt("platform", LIST)]
    p = parse("rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", opts,
              argv, 1)
    if p is None:
        return 0

    def one(name: str) -> str:
        items = cli.client.delete(f"/images/{name}", {"force": p.force or None,
                                                      "noprune": p.no_prune or None})
        return "\n".join(f"Untagged: {i['Untagged']}" if "Untagged" in i
                         else f"Deleted: {i['Deleted']}" for i in items or [])

    return each(p.args, one)


def save(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("o,output", STR, "Write to a file, instead of STDOUT"),
            Opt("platform", LIST)]
    p = parse("save", "[OPTIONS] IMAGE [IMAGE...]", "Save one or more images to a tar "
              "archive (streamed to STDOUT by default)", opts, argv, 1)
    if p is None:
        return 0
    from .containers import write_stream

    if not p.output and os.isatty(1):
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or "
                           "redirect")
    response = cli.client.call("GET", "/images/get", {"names": p.args})
    write_stream(response.chunks(), p.output)
    return 0


def _file_chunks(path: str | None) -> Iterator[bytes]:
    f = open(path, "rb") if path else os.fdopen(os.dup(0), "rb")  # noqa: SIM115
    with f:
        while chunk := f.read(1 << 20):
            yield chunk


def load(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("i,input", STR, "Read from tar archive file, instead of STDIN"),
            Opt("q,quiet", BOOL, "Suppress the load output"), Opt("platform", LIST)]
    p = parse("load", "[OPTIONS]", "Load an image from a tar archive or STDIN", opts, argv,
              0, 0)
    if p is None:
        return 0
    from .. import progress

    if not p.input and os.isatty(0):
        raise CommandError("requested load from stdin, but stdin is empty")
    if p.input and not os.path.exists(p.input):
        raise CommandError(f"open {p.input}: no such file or directory")
    response = cli.client.upload("POST", "/images/load", {"quiet": p.quiet or None},
                                 _file_chunks(p.input),
                                 {"Content-Type": "application/x-tar"})
    if response.headers.get("content-type", "").startswith("application/json"):
        progress.show(response.json_stream(), tty=False)
    else:
        sys.stdout.buffer.write(response.read())
    return 0


def import_(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("c,change", LIST, "Apply Dockerfile instruction to the created image"),
            Opt("m,message", STR, "Set commit message for imported image"),
            Opt("platform", STR)]
    p = parse("import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", "Import the contents "
              "from a tarball to create a filesystem image", opts, argv, 1, 2)
    if p is None:
        return 0
    params: dict[str, Any] = {"message": p.message, "changes": p.change,
                              "platform": p.platform}
    if len(p.args) == 2:
        params["repo"], params["tag"] = split_reference(p.args[1])
    source = p.args[0]
    if source.startswith(("http://", "https://")):
        params["fromSrc"] = source
        response = cli.client.call("POST", "/images/create", params)
    else:
        params["fromSrc"] = "-"
        response = cli.client.upload("POST", "/images/create", params,
                                     _file_chunks(None if source == "-" else source),
                                     {"Content-Type": "application/x-tar"})
    from .. import progress

    progress.show(response.json_stream(), tty=False)
    return 0


HISTORY_OPTS = [Opt("format", STR, "Format output using a custom template"),
                Opt("H,human", BOOL, "Print sizes and dates in human readable format",
                    True),
                Opt("no-trunc", BOOL, "Don't truncate output"),
                Opt("q,quiet", BOOL, "Only show image IDs"), Opt("platform", STR)]
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


class HistoryRow:
    def __init__(self, h: dict[str, Any], trunc: bool, human: bool) -> None:
        self.h, self.trunc, self.human = h, trunc, human

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(HISTORY_HEADERS)}

    @property
    def ID(self) -> str:
        ident = self.h.get("Id") or "<missing>"
        return humanize.short_id(ident) if self.trunc and ident != "<missing>" else ident

    @property
    def CreatedSince(self) -> str:
        created = self.h.get("Created") or 0
        if not self.human:
            return self.CreatedAt
        return humanize.since(created) if created > 0 else "N/A"

    @property
    def CreatedAt(self) -> str:
        import time

        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.h.get("Created") or 0))

    @property
    def CreatedBy(self) -> str:
        text = (self.h.get("CreatedBy") or "").replace("\t", " ")
        return humanize.ellipsis(text, 45) if self.trunc else text

    @property
    def Size(self) -> str:
        size = self.h.get("Size") or 0
        return humanize.size(size) if self.human else str(size)

    @property
    def Comment(self) -> str:
        return self.h.get("Comment") or ""


def history(cli: Cli, argv: list[str]) -> int:
    p = parse("history", "[OPTIONS] IMAGE", "Show the history of an image", HISTORY_OPTS,
              argv, 1, 1)
    if p is None:
        return 0
    from ..output import render

    rows = [HistoryRow(h, not p.no_trunc, p.human)
            for h in cli.client.get(f"/images/{p.args[0]}/history") or []]
    fmt = p.format or ("{{.ID}}" if p.quiet else
                       "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t"
                       "{{.Comment}}")
    render(fmt, rows, HISTORY_HEADERS)
    return 0


def inspect(cli: Cli, argv: list[str]) -> int:
    from .containers import inspect as inspect_any

    return inspect_any(cli, argv, "image")


def prune(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("a,all", BOOL, "Remove all unused images, not just dangling ones"),
            Opt("f,force", BOOL, "Do not prompt for confirmation"),
            Opt("filter", LIST, "Provide filter values (e.g. \"until=<timestamp>\")")]
    p = parse("image prune", "[OPTIONS]", "Remove unused images", opts, argv, 0, 0)
    if p is None:
        return 0
    warning = ("WARNING! This will remove all images without at least one container "
               "associated to them." if p.all else
               "WARNING! This will remove all dangling images.")
    if not confirm(warning, p.force):
        return 0
    from ..api import filters_param

    filters = list(p.filter or []) + ([] if p.all else ["dangling=true"])
    report = cli.client.post("/images/prune", {"filters": filters_param(filters)})
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        print("Deleted Images:")
        for item in deleted:
            for key, value in item.items():
                print(f"{key.lower()}: {value}")
        print()
    print(f"Total reclaimed space: {humanize.human_size(report.get('SpaceReclaimed', 0))}")
    return 0
