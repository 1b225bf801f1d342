"""Host state a crash can leave: mounts under the data and exec roots, cgroups under
sampand's cgroup parent, network namespaces, veths on sampand's bridges and published-port
rules of containers that no longer run. The network parts are the ones sampand's own start
(``Networking.restore``) sweeps; here they are reported, and repaired the same way."""

from __future__ import annotations

import logging
import os
import re
from contextlib import suppress
from functools import partial
from typing import Any

from ..cgroups.paths import _unescape, cgroup_mounts
from ..kernel import syscalls as k
from ..network import bridge as br
from ..network import netns
from .report import ERROR, ORPHAN, Report
from .scope import Scope

log = logging.getLogger("sampand")
CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
BUILD_TEMP = ("build-root-", "build-from-")


def _net_state(scope: Scope) -> tuple[dict[str, Any], list[Any]]:
    """Copies of the network service's container records and networks, taken under its
    lock (its worker thread changes them while sampand runs)."""
    net = scope.network
    with net.lock:
        return dict(net.containers), list(net.networks.values())


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f]


def _below(path: str, root: str) -> bool:
    return path.startswith(root.rstrip("/") + "/")


def _detach(path: str) -> None:
    k.umount(path, k.MNT_DETACH)


def mounts(scope: Scope, report: Report) -> None:
    containers = {c.id: c for c in scope.containers()}
    held = {s.netns for s in _net_state(scope)[0].values() if s.netns}
    data, run = scope.data_root, scope.exec_root
    points = sorted({p for p in mount_points() if _below(p, data) or _below(p, run)},
                    key=len, reverse=True)
    report.count("mounts", len(points))
    for point in points:
        why = None
        rel = os.path.relpath(point, data) if _below(point, data) else None
        if rel is not None:
            parts = rel.split("/")
            if parts[0] == "containers" and len(parts) > 2:
                c = containers.get(parts[1])
                if c is None:
                    why = "a mount of a container that no longer exists"
                elif scope.since is None and not c.mounted and not c.state.running:
                    why = "a root filesystem mount of a stopped container"
            elif parts[0].startswith(BUILD_TEMP) and scope.old_path(
                    os.path.join(data, parts[0])):
                why = "a mount of a build step that never finished"
            elif parts[0] == "snapshots":
                why = "a mount inside the snapshot store"
        elif os.path.dirname(point) == os.path.join(run, "netns") and point not in held \
                and scope.old_path(point):
            why = "a network namespace no container holds"
        if why:
            report.add("host", "stale-mount", ORPHAN, point, why, partial(_detach, point))
    for name in sorted(os.listdir(data)) if os.path.isdir(data) else []:
        path = os.path.join(data, name)
        if name.startswith(BUILD_TEMP) and scope.old_path(path):
            report.add("host", "temp-dir", ORPHAN, path, "a build step's scratch directory",
                       partial(_remove_unmounted, path))
    build_tmp = os.path.join(data, "build", "tmp")
    for name in sorted(os.listdir(build_tmp)) if os.path.isdir(build_tmp) else []:
        path = os.path.join(build_tmp, name)
        if scope.old_path(path):
            report.add("host", "temp-dir", ORPHAN, path, "an interrupted build's context",
                       partial(_remove_unmounted, path))


def _remove_unmounted(path: str) -> None:
    import shutil

    if any(p == path or _below(p, path) for p in mount_points()):
        raise OSError(f"{path} still has mounts")
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def cgroups(scope: Scope, report: Report) -> None:
    running = {c.id for c in scope.containers() if c.state.running}
    parent = "/" + scope.cgroup_parent.strip("/")
    tops = sorted({m.mountpoint.rstrip("/") + parent for m in cgroup_mounts()})
    for top in tops:
        if not os.path.isdir(top):
            continue
        for name in sorted(os.listdir(top)):
            path = os.path.join(top, name)
            if not os.path.isdir(path) or not CONTAINER_ID.match(name):
                continue
            report.count("cgroups")
            if name in running or not scope.old_path(path):
                continue
            if _procs(path):
                report.add("host", "leaked-processes", ERROR, path,
                           f"processes of container {name[:12]}, which is not running, are "
                           "still in its cgroup")
            else:
                report.add("host", "stale-cgroup", ORPHAN, path,
                           "the cgroup of a container that is not running",
                           partial(_rmdir_tree, path))


def _procs(path: str) -> list[str]:
    found = []
    for dirpath, _, _ in os.walk(path):
        with suppress(OSError), open(os.path.join(dirpath, "cgroup.procs")) as f:
            found += f.read().split()
    return found


def _rmdir_tree(path: str) -> None:
    for dirpath, _, _ in sorted(os.walk(path), key=lambda w: len(w[0]), reverse=True):
        os.rmdir(dirpath)


def network(scope: Scope, report: Report) -> None:
    records, _ = _net_state(scope)
    containers = {c.id: c for c in scope.containers()}
    running = {cid for cid, c in containers.items() if c.state.running}
    for cid, state in sorted(records.items()):
        report.count("network records")
        if cid not in containers:
            report.add("host", "stale-network-record", ORPHAN, cid,
                       "network memberships of a container that no longer exists",
                       partial(_forget, scope, cid))
        elif scope.since is None and cid not in running and (state.netns or state.ports):
            report.add("host", "stale-endpoint", ORPHAN, cid,
                       f"container {cid[:12]} is not running but holds its network "
                       "namespace or ports", partial(_release, scope, cid))
    netns_dir = os.path.join(scope.exec_root, "netns")
    held = {s.netns for s in records.values() if s.netns}
    for name in sorted(os.listdir(netns_dir)) if os.path.isdir(netns_dir) else []:
        path = os.path.join(netns_dir, name)
        if path not in held and scope.old_path(path):
            report.add("host", "stale-netns", ORPHAN, path,
                       "a network namespace file no container holds",
                       partial(netns.delete, path))
    veths(scope, report, running)
    rules(scope, report, running)


def _forget(scope: Scope, cid: str) -> None:
    from ..engine.record import Container

    if cid in scope.container_ids():
        return
    stub = Container(id=cid, name="", created="", image="", image_id="", path="", args=[],
                     config={}, host_config={})
    scope.net_call(scope.network.forget, stub)


def _release(scope: Scope, cid: str) -> None:
    c = next((c for c in scope.containers() if c.id == cid), None)
    if c is not None and not c.state.running:
        scope.net_call(scope.network.release, c)


def veths(scope: Scope, report: Report, running: set[str]) -> None:
    """Host ends of veths on this daemon's bridges that no endpoint records."""
    records, networks = _net_state(scope)
    ours = {n.bridge for n in networks if n.driver == "bridge" and n.bridge}
    live = {m.endpoint.host_ifname for s in records.values()
            for m in s.networks.values() if m.endpoint}
    try:
        from ..network import netlink

        with netlink.ipr() as ipr:
            links = [(link["index"], link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_MASTER"))
                     for link in ipr.get_links()]
    except Exception as exc:  # no netlink (a build without pyroute2): say so, go on
        report.add("host", "unchecked", ERROR, "veths", f"cannot list interfaces: {exc}")
        return
    bridges = {index for index, name, _ in links if name in ours}
    for _, name, master in links:
        if name.startswith(br.VETH_PREFIX) and master in bridges and name not in live:
            report.count("veths")
            report.add("host", "stale-veth", ORPHAN, name,
                       "a veth on sampand's bridge that no container's endpoint records",
                       partial(scope.net_call, br.delete_link, name))


def rules(scope: Scope, report: Report, running: set[str]) -> None:
    """Published-port rules in sampand's nftables table of containers not running."""
    nat = scope.network.nat
    try:
        owners = nat.owners()
    except Exception as exc:
        report.add("host", "unchecked", ERROR, f"nft table {nat.table}",
                   f"cannot list the rules: {exc}")
        return
    for owner in sorted(owners - running):
        if scope.since is not None and owner in scope.container_ids():
            continue  # online, a container being started publishes before it runs
        report.add("host", "stale-rule", ORPHAN, f"{nat.table}: ctr:{owner[:12]}",
                   "published-port rules of a container that is not running",
                   partial(scope.net_call, nat.unpublish, owner))


def check(scope: Scope, report: Report) -> None:
    mounts(scope, report)
    cgroups(scope, report)
    network(scope, report)
