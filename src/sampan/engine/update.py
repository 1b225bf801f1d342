"""``docker update``: change a container's resources and restart policy, live.

As dockerd: a zero (or absent) field leaves the value as it is; the result is checked as a
create's HostConfig would be; a running container gets the new limits through the OCI
runtime's ``update`` (its cgroup changes at once), and only then is the record saved, so a
refused update changes nothing.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from .config import parse_host_config
from .errors import InvalidParameter
from .restart import parse_policy
from .spec import _resources

if TYPE_CHECKING:
    from .containers import Containers

RESOURCES = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares",
             "CpuQuota", "CpuPeriod", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight")


def updated_host_config(current: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The HostConfig after applying an update body (400 naming the field if invalid)."""
    new = dict(current)
    for key in RESOURCES:
        value = body.get(key)
        if value in (None, 0, ""):
            continue
        new[key] = value
    if body.get("NanoCpus") and current.get("CpuQuota") and not body.get("CpuQuota"):
        raise InvalidParameter("Conflicting options: Nano CPUs cannot be updated as CPU "
                               "Quota has already been set")
    if body.get("CpuQuota") and current.get("NanoCpus") and not body.get("NanoCpus"):
        raise InvalidParameter("Conflicting options: CPU Quota cannot be updated as NanoCPUs "
                               "has already been set")
    memory, swap = body.get("Memory"), body.get("MemorySwap")
    if memory and not swap:
        old_swap = current.get("MemorySwap") or 0
        if old_swap > 0 and memory > old_swap:
            raise InvalidParameter("Memory limit should be smaller than already set memoryswap "
                                   "limit, update the memoryswap at the same time")
    policy = body.get("RestartPolicy")
    if isinstance(policy, dict) and policy.get("Name"):
        parsed = parse_policy(policy)
        if parsed.restarts and current.get("AutoRemove"):
            raise InvalidParameter("Restart policy cannot be updated because AutoRemove is "
                                   "enabled for the container")
        new["RestartPolicy"] = {"Name": parsed.name,
                                "MaximumRetryCount": parsed.maximum_retry_count}
    parse_host_config(new)
    return new


async def update(containers: Containers, ref: str, body: Any) -> list[str]:
    """Apply the update; docker's warnings (none)."""
    c = containers.get(ref)
    if not isinstance(body, dict):
        raise InvalidParameter("update: expected a JSON object")
    new = updated_host_config(c.host_config, body)
    if c.state.running:
        resources = _resources(parse_host_config(new))
        resources.pop("devices", None)
        path = os.path.join(containers.directory(c), "update.json")
        with open(path, "w") as f:
            json.dump(resources, f)
        await containers.runtime_of(c).update(c.id, path)
    c.host_config = new
    containers.store.save(c)
    containers.on_change("update", c)
    return []
