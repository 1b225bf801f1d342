"""`docker commit`: a container's changes as a new image layer on top of its image.

The layer is the tar of the container snapshot's own changes (whiteouts for deletions),
kept uncompressed in the content store as `docker import` keeps its tarballs, so its digest
is its diff ID. The config is Docker's: the container's Config (or the request's), with the
``--change`` instructions applied and, for a request's Config, the container's merged in
as Docker's commit merges them; a history entry for the new layer; then the image goes
through ``ImageStore.register`` like any other, which unpacks the layer and checks it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..images import ChangeError, Image, ImageStore, apply_changes
from ..images.store import image_reference, rfc3339
from ..oci.decode import DecodeError, decode, encode
from ..oci.image import OCI_CONFIG, OCI_LAYER, ContainerConfig, Descriptor
from .errors import EngineError, InvalidParameter
from .record import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .containers import Containers

# The keys of an image's config that `--change` instructions can set.
_CHANGEABLE = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
               "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
               "StopTimeout")


@dataclass
class CommitRequest:
    reference: str | None = None  # repo[:tag]
    comment: str = ""
    author: str = ""
    changes: Sequence[str] = ()
    config: dict[str, Any] | None = None  # the request body: a Config overriding


def with_changes(base: dict[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """``base`` (a Docker Config) with the Dockerfile ``changes`` applied."""
    if not changes:
        return dict(base)
    try:
        typed = decode(ContainerConfig, {k: base[k] for k in _CHANGEABLE if k in base})
        changed = encode(apply_changes(typed, changes))
    except (ChangeError, DecodeError) as exc:
        raise InvalidParameter(str(exc)) from None
    out = {k: v for k, v in base.items() if k not in _CHANGEABLE}
    out.update({k: changed.get(k) for k in _CHANGEABLE if k in changed or k in base})
    return out


def merge(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Docker's commit merge: what the request's Config leaves unset comes from the
    container's."""
    out = copy.deepcopy(user)
    for key in ("User", "WorkingDir", "StopSignal"):
        if not out.get(key):
            out[key] = container.get(key)
    for key in ("ExposedPorts", "Volumes"):
        out[key] = {**(container.get(key) or {}), **(out.get(key) or {})} or None
    env = list(out.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    out["Env"] = env + [e for e in container.get("Env") or [] if e.partition("=")[0] not in keys]
    out["Labels"] = {**(container.get("Labels") or {}), **(out.get("Labels") or {})}
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    if out.get("Healthcheck") is None:
        out["Healthcheck"] = container.get("Healthcheck")
    return out


@contextlib.asynccontextmanager
async def frozen(containers: Containers, c: Container, pause: bool) -> AsyncIterator[None]:
    """The container paused (its cgroup frozen) while its changes are read, as dockerd's
    commit does by default, so that the layer is one moment of its files; thawed after,
    unless it was paused already. ``pause`` false, or a container not running: as is."""
    paused = False
    if pause and c.state.status == "running":
        with contextlib.suppress(EngineError):  # stopped meanwhile: committed as it is
            await containers.pause(c.id)
            paused = True
    try:
        yield
    finally:
        if paused:
            with contextlib.suppress(EngineError):  # it may have exited meanwhile
                await containers.unpause(c.id)


def commit(store: ImageStore, c: Container, request: CommitRequest) -> Image:
    """The new image (named ``request.reference`` if given). Blocking: run it in a thread."""
    tags = [image_reference(request.reference)] if request.reference else []
    base = store.get(c.image_id)
    if request.config is not None:
        config = merge(with_changes(request.config, request.changes), c.config)
    else:
        config = with_changes(c.config, request.changes)
    added: list[str] = []
    try:
        with store.content.writer() as writer:
            store.snapshots.write_diff(c.id, writer)  # type: ignore[arg-type]
            existed = store.content.has(writer.digest)
            diff_id = writer.commit()
            size = writer.size
        if not existed:
            added.append(diff_id)
        created = rfc3339(time.time())
        raw = base.raw_config
        history = list(raw.get("history") or [])
        entry: dict[str, Any] = {"created": created,
                                 "created_by": " ".join([c.path, *c.args])}
        if request.author:
            entry["author"] = request.author
        if request.comment:
            entry["comment"] = request.comment
        document = {
            "architecture": raw.get("architecture", base.config.architecture),
            **({"variant": raw["variant"]} if raw.get("variant") else {}),
            "os": raw.get("os", base.config.os),
            "author": request.author,
            "comment": request.comment,
            "config": config,
            "container": c.id,
            "container_config": c.config,
            "created": created,
            "docker_version": __version__,
            "history": [*history, entry],
            "rootfs": {"type": "layers",
                       "diff_ids": [*base.config.rootfs.diff_ids, diff_id]},
        }
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        config_digest = store.put_blob(data, added)
        layers = [Descriptor(media_type=la.media_type, digest=la.blob_digest, size=la.blob_size)
                  for la in base.layers]
        layers.append(Descriptor(media_type=OCI_LAYER, digest=diff_id, size=size))
        manifest = store.put_manifest(
            Descriptor(media_type=OCI_CONFIG, digest=config_digest, size=len(data)),
            layers, added)
        image, _ = store.register(manifest, tags=tags)
        return image
    finally:
        store.discard_unreferenced(added)  # a failed commit leaves the store as it was
