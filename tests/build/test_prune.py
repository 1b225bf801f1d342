"""`docker builder prune` against sampand: filters (until, label, id...) and keep-storage
choose which cached steps go, as dockerd's /build/prune takes them; the answer names the
entries deleted and the bytes reclaimed; bad filters are 400s that name them."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import Daemon

# A build stage's layers are held by the cache only (the image holds the final stage's), so
# pruning them reclaims space.
DOCKERFILES = {
    "a": "FROM busybox AS s\nLABEL stage=a\nRUN echo a > /a\n"
         "FROM busybox\nCOPY --from=s /a /copied\n",
    "b": "FROM busybox AS s\nLABEL stage=b\nRUN echo b > /b\n"
         "FROM busybox\nCOPY --from=s /b /copied\n",
    "big": "FROM busybox AS s\nRUN head -c 3000000 /dev/urandom > /big\n"
           "FROM busybox\nCOPY --from=s /big /copied\n",
}


def ran(daemon: Daemon, where: Path, name: str) -> int:
    """Build ``name``; how many RUN steps ran rather than came from the cache."""
    context = where / name
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(DOCKERFILES[name])
    result = subprocess.run(["docker", "build", str(context)], capture_output=True, text=True,
                            timeout=180, env={**daemon.env, "DOCKER_BUILDKIT": "0"})
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout.count("---> Running in")


def reclaimed(output: str) -> str:
    found = re.search(r"Total reclaimed space: (\S+)", output)
    assert found, output
    return found.group(1)


def test_filters_and_keep_storage_choose_what_goes(daemon: Daemon, docker_client: Any,
                                                   tmp_path: Path) -> None:
    daemon.ok("builder", "prune", "-af")
    assert ran(daemon, tmp_path, "a") == 1 and ran(daemon, tmp_path, "b") == 1
    # until: every entry was used just now, so none is old enough to go
    assert reclaimed(daemon.ok("builder", "prune", "-f", "--filter", "until=1h")) == "0B"
    assert ran(daemon, tmp_path, "a") == 0 and ran(daemon, tmp_path, "b") == 0

    # label: only the steps whose image has stage=a (its LABEL and its RUN)
    api = docker_client.api
    report = api.prune_builds(filters={"label": "stage=a"})
    assert len(report["CachesDeleted"]) == 2 and report["SpaceReclaimed"] > 0
    assert ran(daemon, tmp_path, "a") == 1 and ran(daemon, tmp_path, "b") == 0

    # until=3s: a, used before the pause, goes; b, used after it, stays
    time.sleep(4)
    assert ran(daemon, tmp_path, "b") == 0
    out = daemon.ok("builder", "prune", "-f", "--filter", "until=3s")
    assert reclaimed(out) != "0B"
    assert ran(daemon, tmp_path, "b") == 0 and ran(daemon, tmp_path, "a") == 1

    # keep-storage: least recently used first, until the cache holds at most 1 MB
    assert ran(daemon, tmp_path, "big") == 1
    assert ran(daemon, tmp_path, "b") == 0
    report = api.prune_builds(keep_storage=1_000_000)
    assert report["SpaceReclaimed"] >= 3_000_000
    assert ran(daemon, tmp_path, "b") == 0 and ran(daemon, tmp_path, "big") == 1

    # id: part of an entry's ID; nothing matches, nothing goes
    assert api.prune_builds(filters={"id": "no-such-entry"}) == \
        {"CachesDeleted": None, "SpaceReclaimed": 0}
    daemon.ok("builder", "prune", "-af")
    assert ran(daemon, tmp_path, "b") == 1
    daemon.ok("builder", "prune", "-af")


@pytest.mark.parametrize(("params", "message"), [
    ({"filters": '{"nope": ["x"]}'}, "invalid filter 'nope'"),
    ({"filters": '{"until": ["1h", "2h"]}'}, "filters expect only one value"),
    ({"filters": '{"until": ["1h"], "unused-for": ["2h"]}'},
     'conflicting filters: "until" and "unused-for"'),
    ({"filters": '{"until": ["soon"]}'},
     "\"until\" filter expects a duration (e.g., '24h') or a timestamp"),
    ({"keep-storage": "lots"}, "keep-storage is in bytes and expects an integer, got lots"),
])
def test_bad_prune_parameters_are_400s(docker_client: Any, params: dict[str, str],
                                       message: str) -> None:
    api = docker_client.api
    response = api._post(api._url("/build/prune"), params=params)
    assert response.status_code == 400
    assert message in response.json()["message"]
