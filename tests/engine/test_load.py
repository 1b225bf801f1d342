"""Load (issue 9): 200 concurrent API clients against a private sampand for a bounded time
(60 s by default), each looping through create, start, wait, logs, inspect and rm, and one
in four iterations instead a long-running container whose logs and inspect are read while
it runs and which is then removed with force. No request may fail (nothing here races on
purpose, so no 404 or 409 is allowed either), every container's own output must come back
from its logs, and afterwards the host is as it was: no processes or network namespaces in
the daemon's cgroups, no cgroups, mounts, veths on its bridge, nft rules or IP allocations
of its own, and no file descriptors piling up in sampand.

``SAMPAN_LOAD_CLIENTS`` and ``SAMPAN_LOAD_SECONDS`` scale it (README, issue 9).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.engine.conftest import Daemon, started_daemon
from tests.engine.test_network_churn import host_state, our_namespaces

CLIENTS = int(os.environ.get("SAMPAN_LOAD_CLIENTS", "200"))
SECONDS = float(os.environ.get("SAMPAN_LOAD_SECONDS", "60"))
TIMEOUT = 300.0  # one request, under load on two cores


@pytest.fixture(scope="module")
def load_daemon() -> Iterator[Daemon]:
    """A sampand of its own, with a cgroup parent no other daemon in the session shares."""
    with started_daemon(cgroup_parent=f"/sampan-load-{os.getpid()}") as d:
        yield d


def _cgroups(d: Daemon) -> set[str]:
    found = set()
    for controller in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", controller) + d.cgroup_parent
        for dirpath, _, _ in os.walk(top):
            if dirpath != top:
                found.add(dirpath)
    return found


def _processes(d: Daemon) -> set[int]:
    """Processes of the daemon's containers and monitors (not sampand itself)."""
    assert d.proc is not None
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (d.proc.pid, os.getpid()):
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                in_cgroup = d.cgroup_parent + "/" in f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                names_base = d.base.encode() in f.read()
        except OSError:
            continue
        if in_cgroup or names_base:
            found.add(int(entry))
    return found


def snapshot(d: Daemon) -> dict[str, object]:
    """What a leak would show (host_state from the churn test, kept to this daemon's own
    parts: other sessions on this VM have links and mounts of their own)."""
    state = host_state(d)
    assert d.proc is not None
    return {
        "processes": _processes(d),
        "namespaces": our_namespaces(d),
        "cgroups": _cgroups(d),
        "mounts": [m for m in state["mounts"] if d.base in m],  # type: ignore[attr-defined]
        "veths": [link for link in state["links"]  # type: ignore[attr-defined]
                  if link[1] == d.bridge],
        "nft": state["table"],
        "allocated": state["allocated"],
        "containers": sorted(os.listdir(os.path.join(d.data_root, "containers")))
        if os.path.isdir(os.path.join(d.data_root, "containers")) else [],
    }


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def ok(self, op: str) -> None:
        with self.lock:
            self.counts[op] = self.counts.get(op, 0) + 1

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


class Failed(Exception):
    pass


def _expect(tally: Tally, op: str, response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise Failed(f"{op}: {response.status_code} {response.text[:300]}")
    tally.ok(op)
    return response


def _run(client: httpx.Client, tally: Tally, marker: str, script: str) -> str:
    """A busybox container named ``marker`` running ``script``, created and started."""
    created = _expect(tally, "create", client.post(
        "/containers/create", params={"name": marker},
        json={"Image": "busybox", "Cmd": ["sh", "-c", script]}), 201)
    cid: str = created.json()["Id"]
    _expect(tally, "start", client.post(f"/containers/{cid}/start"), 204)
    return cid


def _short_lived(client: httpx.Client, tally: Tally, marker: str) -> None:
    cid = _run(client, tally, marker, f"echo {marker}")
    waited = _expect(tally, "wait", client.post(f"/containers/{cid}/wait"), 200)
    if waited.json().get("StatusCode") != 0:
        raise Failed(f"wait: {waited.text}")
    logs = _expect(tally, "logs", client.get(f"/containers/{cid}/logs",
                                             params={"stdout": "1", "stderr": "1"}), 200)
    if marker.encode() not in logs.content:
        raise Failed(f"logs of {marker}: {logs.content[:200]!r}")
    state = _expect(tally, "inspect", client.get(f"/containers/{cid}/json"), 200).json()
    if (state["State"]["Status"], state["State"]["ExitCode"]) != ("exited", 0):
        raise Failed(f"inspect {marker}: {state['State']}")
    _expect(tally, "rm", client.delete(f"/containers/{cid}", params={"v": "1"}), 204)


def _long_running(client: httpx.Client, tally: Tally, marker: str) -> None:
    cid = _run(client, tally, marker, f"echo {marker}; exec sleep 300")
    deadline = time.monotonic() + TIMEOUT
    while True:
        logs = _expect(tally, "logs", client.get(f"/containers/{cid}/logs",
                                                 params={"stdout": "1"}), 200)
        if marker.encode() in logs.content:
            break
        if time.monotonic() > deadline:
            raise Failed(f"logs of running {marker}: never showed its output")
        time.sleep(0.2)
    state = _expect(tally, "inspect", client.get(f"/containers/{cid}/json"), 200).json()
    if not state["State"]["Running"]:
        raise Failed(f"inspect {marker}: not running: {state['State']}")
    _expect(tally, "rm -f", client.delete(f"/containers/{cid}",
                                          params={"force": "1", "v": "1"}), 204)


def _client(d: Daemon, index: int, until: float, tally: Tally) -> None:
    with d.http(timeout=TIMEOUT) as client:
        iteration = 0
        while time.monotonic() < until:
            marker = f"load-{index}-{iteration}-{uuid.uuid4().hex[:6]}"
            try:
                if (index + iteration) % 4 == 3:
                    _long_running(client, tally, marker)
                else:
                    _short_lived(client, tally, marker)
            except (Failed, httpx.HTTPError, ValueError, KeyError) as exc:
                tally.error(f"client {index} {marker}: {type(exc).__name__}: {exc}")
                return
            iteration += 1


def _open_fds(d: Daemon) -> int:
    assert d.proc is not None
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def test_200_clients_for_a_minute_leave_nothing_behind(load_daemon: Daemon) -> None:
    d = load_daemon
    # one container first, so the lazily made parts (cgroup parent, nft table) exist
    d.ok("run", "--rm", "busybox", "true")
    before = snapshot(d)
    fds_before = _open_fds(d)
    tally = Tally()
    until = time.monotonic() + SECONDS
    threads = [threading.Thread(target=_client, args=(d, i, until, tally), daemon=True)
               for i in range(CLIENTS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 2 * TIMEOUT)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "clients still running"
    print(f"\nload: {CLIENTS} clients, {elapsed:.0f} s, requests {tally.counts}")
    assert not tally.errors, "\n".join(tally.errors[:20]) + f"\n... {len(tally.errors)}"
    assert tally.counts.get("rm", 0) + tally.counts.get("rm -f", 0) >= CLIENTS
    assert d.proc is not None and d.proc.poll() is None, d.log_text()
    with d.http() as client:
        assert client.get("/containers/json", params={"all": "1"}).json() == []
    after = snapshot(d)
    for key in before:
        assert after[key] == before[key], (key, before[key], after[key])
    assert _open_fds(d) <= fds_before + 10, (fds_before, _open_fds(d))
