"""`sampan build`: the classic builder's protocol, as `DOCKER_BUILDKIT=0 docker build`.

The context directory is sent as a tar, without what its .dockerignore excludes (the
Dockerfile and .dockerignore themselves always go); `-` reads a tar or a bare Dockerfile
from stdin. A Dockerfile given with -f outside the context is added to the tar under a
name of its own, as the docker CLI does. The daemon's step-by-step output is the progress
view (a base image's pull shows its steps); a failing step's message goes to stderr and its
exit code is the command's.
"""

from __future__ import annotations

import os
import sys

from ..errors import CommandError
from ..flags import BOOL, LIST, STR, Opt
from . import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Any

    from ..main import Cli

OPTS = [Opt("t,tag", LIST, "Name and optionally a tag in the 'name:tag' format"),
        Opt("f,file", STR, "Name of the Dockerfile (default: 'PATH/Dockerfile')"),
        Opt("build-arg", LIST, "Set build-time variables"),
        Opt("label", LIST, "Set metadata for an image"),
        Opt("target", STR, "Set the target build stage to build"),
        Opt("no-cache", BOOL, "Do not use cache when building the image"),
        Opt("pull", BOOL, "Always attempt to pull a newer version of the image"),
        Opt("q,quiet", BOOL, "Suppress the build output and print image ID on success"),
        Opt("iidfile", STR, "Write the image ID to the file"),
        Opt("network", STR, "Set the networking mode for the RUN instructions"),
        Opt("platform", STR, "Set platform if server is multi-platform capable"),
        Opt("rm", BOOL, "Remove intermediate containers after a successful build", True),
        Opt("force-rm", BOOL, "Always remove intermediate containers")]


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key:
            raise CommandError(f"invalid {what}: {item!r}")
        out[key] = value if sep else os.environ.get(key, "")
    return out


def _context_tar(root: str, dockerfile: str | None, out: IO[bytes]) -> str:
    """Write the context of ``root`` to ``out``; the Dockerfile's name inside it."""
    import secrets
    import tarfile

    from ....build.dockerignore import Matcher

    try:
        with open(os.path.join(root, ".dockerignore")) as f:
            matcher = Matcher.from_text(f.read())
    except FileNotFoundError:
        matcher = Matcher([])
    path = dockerfile or os.path.join(root, "Dockerfile")
    if not os.path.isfile(path):
        raise CommandError(f"unable to prepare context: unable to evaluate symlinks in "
                           f"Dockerfile path: lstat {os.path.abspath(path)}: no such file "
                           "or directory")
    inside = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    keep = {inside, ".dockerignore"}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(root):
            rel_top = os.path.relpath(top, root)
            for name in sorted(dirs + files):
                rel = name if rel_top == "." else f"{rel_top}/{name}"
                if rel not in keep and matcher.excluded(rel):
                    # an excluded directory is still walked when a `!` pattern may
                    # bring back something inside it
                    if name in dirs and not matcher.has_exceptions:
                        dirs.remove(name)
                    continue
                tar.add(os.path.join(top, name), rel, recursive=False)
        if inside.startswith(".."):  # -f from outside the context
            inside = f".dockerfile.{secrets.token_hex(10)}"
            tar.add(path, inside, recursive=False)
    return inside


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(1 << 20):
        yield chunk


def build(cli: Cli, argv: list[str]) -> int:
    p = parse("build", "[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile", OPTS,
              argv, 1, 1)
    if p is None:
        return 0
    import tempfile

    from ....oci.jsonio import dumps

    params: dict[str, Any] = {
        "t": p.tag or None, "buildargs": dumps(_pairs(p.build_arg, "build-arg")),
        "labels": dumps(_pairs(p.label, "label")), "target": p.target,
        "nocache": p.no_cache or None, "pull": p.pull or None, "q": p.quiet or None,
        "networkmode": p.network, "platform": p.platform, "rm": p.rm,
        "forcerm": p.force_rm or None}
    source = p.args[0]
    with tempfile.TemporaryFile() as body:
        if source == "-":
            body.write(sys.stdin.buffer.read())
            if p.file:
                params["dockerfile"] = p.file
        else:
            if not os.path.isdir(source):
                raise CommandError(f'unable to prepare context: path "{source}" not found')
            params["dockerfile"] = _context_tar(source, p.file, body)
        body.seek(0)
        response = cli.client.upload("POST", "/build", params, _chunks(body),
                                     {"Content-Type": "application/x-tar"})
        image_id = ""
        for message in response.json_stream():
            if "errorDetail" in message or "error" in message:
                detail = message.get("errorDetail") or {}
                sys.stderr.write((detail.get("message") or message.get("error", "")) + "\n")
                return int(detail.get("code") or 1)
            if isinstance(message.get("aux"), dict) and message["aux"].get("ID"):
                image_id = message["aux"]["ID"]
            elif "stream" in message and not p.quiet:
                sys.stdout.write(message["stream"])
                sys.stdout.flush()
            elif "status" in message and not p.quiet and \
                    not (message.get("progressDetail") or {}).get("current"):
                # a base image's pull: its steps, without the byte counts
                prefix = f"{message['id']}: " if message.get("id") else ""
                sys.stdout.write(f"{prefix}{message['status']}\n")
    if p.quiet and image_id:
        sys.stdout.write(image_id + "\n")
    if p.iidfile and image_id:
        with open(p.iidfile, "w") as f:
            f.write(image_id)
    return 0
