"""cp: files between a container and the host, through the archive endpoint's tar
streams, with docker's rules for where a copy lands."""

from __future__ import annotations

import os
import sys

from .... import humanize
from ..api import APIError
from ..errors import CommandError
from ..flags import BOOL, Opt
from . import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    import tarfile
    from typing import IO, Any

    from ..main import Cli

CP_OPTS = [Opt("a,archive", BOOL, "Archive mode (copy all uid/gid information)"),
           Opt("L,follow-link", BOOL, "Always follow symbol link in SRC_PATH"),
           Opt("q,quiet", BOOL, "Suppress progress output during copy")]


def split_target(arg: str) -> tuple[str | None, str]:
    """("container", "path") for CONTAINER:PATH; (None, path) for a local path."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


def path_stat(header: str | None) -> dict[str, Any]:
    if not header:
        return {}
    import base64

    from ....oci import jsonio

    return dict(jsonio.loads(base64.b64decode(header)))


def cp(cli: Cli, argv: list[str]) -> int:
    p = parse("cp", "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tsampan cp [OPTIONS] "
              "SRC_PATH|- CONTAINER:DEST_PATH", "Copy files/folders between a container "
              "and the local filesystem", CP_OPTS, argv, 2, 2)
    if p is None:
        return 0
    src_c, src = split_target(p.args[0])
    dst_c, dst = split_target(p.args[1])
    if src_c and dst_c:
        raise CommandError("copying between containers is not supported")
    if not src_c and not dst_c:
        raise CommandError("must specify at least one container source")
    if src_c:
        return _from_container(cli, src_c, src, dst, p.quiet)
    assert dst_c is not None
    return _to_container(cli, src, dst_c, dst, p.archive, p.follow_link, p.quiet)


def _from_container(cli: Cli, container: str, src: str, dst: str, quiet: bool) -> int:
    response = cli.client.call("GET", f"/containers/{container}/archive", {"path": src})
    if dst == "-":
        for chunk in response.chunks():
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    import tarfile
    import tempfile

    stat = path_stat(response.headers.get("x-docker-container-path-stat"))
    src_is_dir = bool(stat.get("mode", 0) & (1 << 31))  # Go's os.ModeDir
    top = stat.get("name") or os.path.basename(src.rstrip("/")) or "."
    contents_only = src.endswith("/.")
    if os.path.isdir(dst):
        target = dst if contents_only else os.path.join(dst, top)
    else:
        if dst.endswith("/") and not os.path.exists(dst):
            raise CommandError(f"destination directory {dst} does not exist")
        parent = os.path.dirname(os.path.abspath(dst))
        if not os.path.isdir(parent):
            raise CommandError(f"no such directory: {parent}")
        target = dst
    total = 0
    with tempfile.TemporaryFile() as spool:
        for chunk in response.chunks():
            spool.write(chunk)
            total += len(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r|") as tar:
            _extract(tar, top, target, src_is_dir)
    if not quiet:
        print(f"Successfully copied {humanize.size(total)} to {dst}", file=sys.stderr)
    return 0


def _extract(tar: tarfile.TarFile, top: str, target: str, is_dir: bool) -> None:
    """Entries under ``top`` are written under ``target`` instead; nothing leaves it,
    neither by name nor through a symlink an earlier entry made."""
    root = os.path.abspath(target)
    base = os.path.dirname(root)
    real_base = os.path.realpath(base)

    def renamed(name: str) -> str:
        name = name.rstrip("/")
        if name == top:
            rel = ""
        elif name.startswith(top + "/"):
            rel = name[len(top) + 1:]
        else:
            rel = name
        dest = os.path.abspath(os.path.join(root, rel)) if rel else root
        if dest != root and not dest.startswith(root + os.sep):
            raise CommandError(f"refusing to write outside {target}: {name}")
        parent = os.path.realpath(os.path.dirname(dest))
        if parent != real_base and not parent.startswith(real_base + os.sep):
            raise CommandError(f"refusing to write through a symlink: {name}")
        return os.path.relpath(dest, base)

    for member in tar:
        member.name = renamed(member.name)
        if member.islnk():
            member.linkname = renamed(member.linkname)
        tar.extract(member, base, set_attrs=True)


def _to_container(cli: Cli, src: str, container: str, dst: str, archive: bool,
                  follow: bool, quiet: bool) -> int:
    client = cli.client
    params: dict[str, Any] = {"noOverwriteDirNonDir": True,
                              "copyUIDGID": True if archive else None}
    if src == "-":
        from .images import _file_chunks

        client.upload("PUT", f"/containers/{container}/archive", {**params, "path": dst},
                      _file_chunks(None), {"Content-Type": "application/x-tar"}).read()
        return 0
    if not os.path.lexists(src):
        raise CommandError(f"lstat {os.path.abspath(src)}: no such file or directory")
    if follow:
        src = os.path.realpath(src)
    dst_is_dir = False
    try:
        response = client.call("HEAD", f"/containers/{container}/archive", {"path": dst})
        response.close()
        stat = path_stat(response.headers.get("x-docker-container-path-stat"))
        dst_is_dir = bool(stat.get("mode", 0) & (1 << 31))
    except APIError as exc:
        if exc.status != 404:
            raise
    base = os.path.basename(os.path.normpath(src))
    if dst_is_dir:
        directory, name = dst, (None if src.endswith("/.") else base)
    else:
        if dst.endswith("/"):
            raise CommandError(f"Error response from daemon: Could not find the file {dst} "
                               f"in container {container}")
        directory, name = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(
            dst.rstrip("/"))
    import tempfile

    with tempfile.TemporaryFile() as spool:
        size = _pack(spool, src, name, archive)
        spool.seek(0)
        client.upload("PUT", f"/containers/{container}/archive", {**params,
                                                                  "path": directory},
                      _spooled(spool), {"Content-Type": "application/x-tar"}).read()
    if not quiet:
        print(f"Successfully copied {humanize.size(size)} to {container}:{dst}",
              file=sys.stderr)
    return 0


def _pack(out: IO[bytes], src: str, name: str | None, archive: bool) -> int:
    """Tar ``src`` into ``out`` as ``name`` (its contents at the top when None)."""
    import tarfile

    def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if not archive:
            info.uid = info.gid = 0
            info.uname = info.gname = ""
        return info

    total = 0
    with tarfile.open(fileobj=out, mode="w|") as tar:
        if name is None:
            for entry in sorted(os.listdir(src)):
                tar.add(os.path.join(src, entry), arcname=entry, filter=owner)
        else:
            tar.add(src, arcname=name, filter=owner)
    for dirpath, _dirs, files in os.walk(src) if os.path.isdir(src) else []:
        total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in files)
    return total or (os.lstat(src).st_size if not os.path.isdir(src) else 0)


def _spooled(spool: IO[bytes]) -> Any:
    while chunk := spool.read(1 << 20):
        yield chunk
