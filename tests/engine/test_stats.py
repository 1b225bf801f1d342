"""GET /containers/{id}/stats in docker's shape: `docker stats --no-stream`, one-shot and
streaming through the API, and the parsing of /proc files."""

from __future__ import annotations

import json
import re
import uuid

import httpx

from sampan.engine import stats

from .conftest import Daemon

_HEAD = ("Inter-|   Receive                                                |  Transmit\n"
         " face |bytes    packets errs drop fifo frame compressed multicast|"
         "bytes    packets errs drop fifo colls carrier compressed\n")
NET_DEV = (_HEAD
           + "    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n"
           + "  eth0: 1500 12 1 2 0 0 0 0 700 7 3 4 0 0 0 0\n")


def test_proc_parsing() -> None:
    assert stats.parse_net_dev(NET_DEV) == {"eth0": {
        "rx_bytes": 1500, "rx_packets": 12, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 700, "tx_packets": 7, "tx_errors": 3, "tx_dropped": 4}}
    ticks = stats.clock_ticks()
    text = "cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 1 1 1 1 1 1 1 1 1 1\n"
    assert stats.system_cpu_usage(text) == 280 * 1_000_000_000 // ticks
    assert stats.host_memory("MemTotal:       1000 kB\n") == 1024000


def _run(daemon: Daemon) -> str:
    name = "s-" + uuid.uuid4().hex[:8]
    daemon.ok("run", "-d", "--name", name, "-m", "64m", "--pids-limit", "20", "busybox",
              "sh", "-c", "x=$(head -c 4000000 /dev/zero | tr '\\0' a); "
              "while true; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 0.05; "
              "done")
    return name


def test_docker_stats_no_stream(daemon: Daemon) -> None:
    name = _run(daemon)
    try:
        out = daemon.ok("stats", "--no-stream", "--format",
                        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}|{{.NetIO}}",
                        name).strip()
        fields = out.split("|")
        assert fields[0] == name
        cpu = float(fields[1].rstrip("%"))
        assert 0.0 < cpu <= 200.0  # it does busy work: the precpu sample makes this real
        usage, limit = fields[2].split(" / ")
        assert limit == "64MiB"
        assert re.fullmatch(r"[0-9.]+(KiB|MiB|B)", usage)
        assert 0.0 < float(fields[3].rstrip("%")) < 100.0
        assert int(fields[4]) >= 1
        assert re.fullmatch(r"[0-9.]+[kMG]?B / [0-9.]+[kMG]?B", fields[5])  # eth0's counters
        table = daemon.ok("stats", "--no-stream", name)
        assert "CONTAINER ID" in table and name in table
    finally:
        daemon.ok("rm", "-f", name)


def test_stats_api_shapes(daemon: Daemon) -> None:
    name = _run(daemon)
    try:
        with daemon.http() as http:
            one = http.get(f"/containers/{name}/stats", params={"stream": "0"}).json()
            assert one["name"] == "/" + name and len(one["id"]) == 64
            assert one["precpu_stats"]["cpu_usage"]["total_usage"] > 0  # a sample before
            assert one["preread"] != "0001-01-01T00:00:00Z"
            cpu = one["cpu_stats"]
            assert cpu["cpu_usage"]["total_usage"] >= one["precpu_stats"]["cpu_usage"][
                "total_usage"]
            assert cpu["system_cpu_usage"] > 0 and cpu["online_cpus"] >= 1
            memory = one["memory_stats"]
            assert memory["limit"] == 64 * 1024 * 1024 and memory["usage"] > 0
            assert ("total_inactive_file" in memory["stats"]
                    or "inactive_file" in memory["stats"])
            assert one["pids_stats"]["current"] >= 1 and one["pids_stats"]["limit"] == 20
            eth0 = one["networks"]["eth0"]  # the bridge network's interface, not loopback
            assert set(eth0) >= {"rx_bytes", "tx_bytes", "rx_packets", "tx_dropped"}
            assert "lo" not in one["networks"]
            shot = http.get(f"/containers/{name}/stats",
                            params={"stream": "0", "one-shot": "1"}).json()
            assert shot["precpu_stats"]["cpu_usage"]["total_usage"] == 0
            bad = http.get(f"/containers/{name}/stats", params={"one-shot": "1"})
            assert bad.status_code == 400
            assert http.get("/containers/nope-nope/stats").status_code == 404
            docs = []
            with http.stream("GET", f"/containers/{name}/stats", timeout=20) as r:
                for line in r.iter_lines():
                    docs.append(json.loads(line))
                    if len(docs) == 2:
                        break
            assert docs[1]["precpu_stats"] == docs[0]["cpu_stats"]
    finally:
        daemon.ok("rm", "-f", name)
    stopped = "s-" + uuid.uuid4().hex[:8]
    daemon.ok("create", "--name", stopped, "busybox", "true")
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=daemon.socket),
                          base_url="http://sampand", timeout=30) as http:
            doc = http.get(f"/containers/{stopped}/stats", params={"stream": "0"}).json()
            assert doc["memory_stats"] == {} and doc["read"] == "0001-01-01T00:00:00Z"
    finally:
        daemon.ok("rm", stopped)
