"""`docker system df` (-v) and container sizes (ps -s, size=true)."""

from __future__ import annotations

import json
import uuid

from .conftest import Daemon


def test_system_df(daemon: Daemon) -> None:
    name = "df-" + uuid.uuid4().hex[:10]
    daemon.ok("run", "--name", name, "-v", f"{name}:/vol", "busybox", "sh", "-c",
              "head -c 100000 /dev/zero > /blob; head -c 5000 /dev/zero > /vol/data")
    try:
        with daemon.http() as http:
            body = http.get("/v1.45/system/df").json()
            assert set(body) >= {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
            assert body["LayersSize"] > 1_000_000
            volume = next(v for v in body["Volumes"] if v["Name"] == name)
            assert volume["UsageData"] == {"Size": 5000, "RefCount": 1}
            mine = next(c for c in body["Containers"] if c["Names"] == [f"/{name}"])
            assert 100_000 <= mine["SizeRw"] < 110_000
            busybox = next(i for i in body["Images"] if "busybox:latest" in i["RepoTags"])
            assert mine["SizeRootFs"] == mine["SizeRw"] + busybox["Size"]
            assert busybox["Containers"] >= 1
            only = http.get("/v1.45/system/df", params={"type": "container"}).json()
            assert set(only) == {"Containers"}
            assert http.get("/v1.45/system/df", params={"type": "x"}).status_code == 400
        table = daemon.ok("system", "df")
        assert table.splitlines()[0].split()[:2] == ["TYPE", "TOTAL"]
        assert "Images" in table and "Containers" in table
        verbose = daemon.ok("system", "df", "-v")
        assert name in verbose and "busybox" in verbose
        assert "Local Volumes space usage" in verbose
        volume_row = next(ln for ln in verbose.splitlines() if ln.startswith(name + " "))
        assert volume_row.split()[1:] == ["1", "5kB"]
        sizes = daemon.ok("ps", "-a", "-s", "--filter", f"name={name}",
                          "--format", "{{.Size}}").strip()
        assert sizes.startswith("100kB") or sizes.startswith("100.0kB") or "kB" in sizes
        listed = json.loads(daemon.ok("ps", "-a", "-s", "--filter", f"name={name}",
                                      "--format", "{{json .}}"))
        assert "virtual" in listed["Size"]
    finally:
        daemon.ok("rm", name)
        daemon.ok("volume", "rm", name)
