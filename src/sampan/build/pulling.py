"""The images a build starts from or copies from (``FROM``, ``COPY --from=image``).

As dockerd's classic builder does: the local image is used unless ``--pull`` is given, it
is missing, or it is for another platform than the one asked for (``FROM --platform`` or
the build's ``--platform``); otherwise the image is pulled from its registry, the pull's
progress going into the build's output. From a multi-platform index the platform's
manifest is chosen; a platform the image does not offer is the registry's clear error
(``no matching manifest for linux/s390x in the manifest list entries``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..images.store import Image, ImageError, ImageNotFound, ImageStore
from ..oci.image import Platform, normalize_platform, parse_platform, platform_matches
from .errors import BuildError

if TYPE_CHECKING:
    from ..registry import Credentials, RegistryOptions

Send = Callable[[dict[str, Any]], Awaitable[None]]
# The key docker's config.json (and so X-Registry-Config) uses for Docker Hub.
HUB_AUTH_KEY = "https://index.docker.io/v1/"
SUPPORTED_OS = ("linux",)


@dataclass
class RegistryAccess:
    """How the build reaches registries: the daemon's settings (insecure registries,
    mirrors) and the client's credentials per registry (the X-Registry-Config header)."""

    options: RegistryOptions | None = None
    auths: dict[str, Credentials] = field(default_factory=dict)

    def for_domain(self, domain: str) -> RegistryOptions:
        from ..registry import RegistryOptions

        base = self.options or RegistryOptions()
        keys: tuple[str, ...] = (domain, f"https://{domain}", f"http://{domain}")
        if domain == "docker.io":
            keys = (HUB_AUTH_KEY, "index.docker.io", *keys)
        creds = next((self.auths[k] for k in keys if k in self.auths), None)
        return dataclasses.replace(base, credentials=creds or base.credentials)


def wanted_platform(text: str | None, what: str = "platform") -> Platform | None:
    """``--platform``/``FROM --platform`` text as a platform this daemon can build for."""
    if not text:
        return None
    try:
        platform = normalize_platform(parse_platform(text))
    except ValueError as exc:
        raise BuildError(f"{what}: {exc}") from None
    if platform.os not in SUPPORTED_OS:
        raise BuildError(f"{what}: unsupported os {platform.os}")
    return platform


def platform_text(platform: Platform) -> str:
    parts = [platform.os, platform.architecture] + ([platform.variant] if platform.variant
                                                    else [])
    return "/".join(parts)


def _local(store: ImageStore, reference: str, platform: Platform | None) -> Image | None:
    try:
        image = store.get(reference)
    except ImageNotFound:
        return None
    except (ImageError, ValueError) as exc:
        raise BuildError(str(exc)) from None
    if platform is not None and not platform_matches(platform, image.config.platform):
        return None  # another platform's image under that name: pull the one asked for
    return image


async def pull_image(store: ImageStore, reference: str, platform: Platform | None,
                     access: RegistryAccess, send: Send) -> Image:
    """Pull ``reference`` for ``platform``, each progress message through ``send``."""
    from .. import registry
    from ..images.reference import InvalidReference, parse_docker_ref

    try:
        ref = parse_docker_ref(reference)
    except InvalidReference as exc:
        raise BuildError(str(exc)) from None
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def progress(event: registry.ProgressEvent) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event.message())

    task = asyncio.ensure_future(asyncio.to_thread(
        registry.pull, store, ref, platform, options=access.for_domain(ref.domain),
        progress=progress))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    while (message := await queue.get()) is not None:
        await send(message)
    try:
        result = await task
    except (registry.RegistryError, ImageError) as exc:
        raise BuildError(str(exc)) from None
    return result.image


async def base_image(store: ImageStore, reference: str, platform: Platform | None, *,
                     pull: bool, access: RegistryAccess, send: Send) -> Image:
    """The image ``reference`` names for ``platform``: local, else pulled (always with
    ``pull``)."""
    if not pull:
        image = await asyncio.to_thread(_local, store, reference, platform)
        if image is not None:
            return image
    return await pull_image(store, reference, platform, access, send)
