"""`docker commit` (POST /commit): a new layer from the container's changes, the config
with --change applied, history, and the image runs; docker-py's commit with a Config; the
committed image pushed and found again with `docker search` (GET /images/search)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..registry.conftest import Registry, _start, _stop
from .conftest import Daemon, until


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    run = tmp_path_factory.mktemp("registry-run")
    reg = _start(run, Path(tmp_path_factory.mktemp("commit-registry")), auth=False)
    try:
        yield reg
    finally:
        _stop(run, reg)


def _name() -> str:
    return "cm-" + uuid.uuid4().hex[:10]


def test_commit_and_run(daemon: Daemon) -> None:
    name, repo = _name(), "committed-" + uuid.uuid4().hex[:6]
    daemon.ok("run", "--name", name, "-e", "KEEP=1", "busybox", "sh", "-c",
              "echo made > /made && rm /bin/zcat")
    try:
        before = json.loads(daemon.ok("image", "inspect", "busybox"))[0]
        image_id = daemon.ok("commit", "-m", "a message", "-a", "someone", name,
                             f"{repo}:v1").strip()
        assert image_id.startswith("sha256:")
        info = json.loads(daemon.ok("image", "inspect", f"{repo}:v1"))[0]
        assert info["Id"] == image_id
        assert len(info["RootFS"]["Layers"]) == len(before["RootFS"]["Layers"]) + 1
        assert info["Comment"] == "a message" and info["Author"] == "someone"
        assert "KEEP=1" in info["Config"]["Env"]
        assert info["Config"]["Cmd"] == ["sh", "-c", "echo made > /made && rm /bin/zcat"]
        history = daemon.ok("history", "--no-trunc", "--format", "{{.Comment}}|{{.CreatedBy}}",
                            f"{repo}:v1").splitlines()
        assert history[0].startswith("a message|sh -c echo made")
        out = daemon.ok("run", "--rm", f"{repo}:v1", "sh", "-c",
                        "cat /made; test -e /bin/zcat || echo gone")
        assert out == "made\ngone\n"
    finally:
        daemon.docker("rm", "-f", name)
        daemon.docker("rmi", f"{repo}:v1")


def test_commit_with_change(daemon: Daemon) -> None:
    name, repo = _name(), "changed-" + uuid.uuid4().hex[:6]
    daemon.ok("run", "--name", name, "busybox", "sh", "-c", "echo data > /d")
    try:
        daemon.ok("commit", "--change", 'CMD ["cat", "/d"]', "--change", "ENV MODE=x",
                  "--change", "WORKDIR /tmp", name, repo)
        info = json.loads(daemon.ok("image", "inspect", repo))[0]
        assert info["Config"]["Cmd"] == ["cat", "/d"] and info["Config"]["WorkingDir"] == "/tmp"
        assert "MODE=x" in info["Config"]["Env"]
        assert daemon.ok("run", "--rm", repo) == "data\n"
        bad = daemon.docker("commit", "--change", "BOGUS x", name, repo + ":bad")
        assert bad.returncode != 0 and "BOGUS" in bad.stderr.upper()
    finally:
        daemon.docker("rm", "-f", name)
        daemon.docker("rmi", repo)


def test_commit_running_container_with_dockerpy(daemon: Daemon, docker_client: Any) -> None:
    name, repo = _name(), "pycommit-" + uuid.uuid4().hex[:6]
    container = docker_client.containers.run("busybox", ["sleep", "300"], name=name,
                                             detach=True)
    try:
        container.exec_run(["sh", "-c", "echo live > /live"])
        image = container.commit(repository=repo, tag="t", conf={"Cmd": ["cat", "/live"],
                                                                 "Labels": {"k": "v"}})
        assert image.labels == {"k": "v"}
        assert docker_client.containers.run(f"{repo}:t", remove=True) == b"live\n"
    finally:
        container.remove(force=True)
        daemon.docker("rmi", f"{repo}:t")


def test_commit_errors(daemon: Daemon) -> None:
    with daemon.http() as http:
        r = http.post("/v1.45/commit", params={"container": "nope"})
        assert r.status_code == 404 and "No such container" in r.json()["message"]
        name = _name()
        daemon.ok("create", "--name", name, "busybox", "true")
        try:
            r = http.post("/v1.45/commit", params={"container": name, "repo": "UPPER"})
            assert r.status_code == 400
            r = http.post("/v1.45/commit", params={"container": name}, content=b"[1]")
            assert r.status_code == 400
            images = len(http.get("/v1.45/images/json", params={"all": "1"}).json())
            r = http.post("/v1.45/commit", params={"container": name})
            assert r.status_code == 201  # an untagged image
            assert len(http.get("/v1.45/images/json").json()) == images + 1
            http.delete(f"/v1.45/images/{r.json()['Id']}")
        finally:
            daemon.ok("rm", name)


def test_commit_push_and_search(daemon: Daemon, registry: Registry) -> None:
    name, repo = _name(), f"{registry.host}/searched-{uuid.uuid4().hex[:6]}"
    daemon.ok("run", "--name", name, "busybox", "sh", "-c", "echo pushed > /p")
    try:
        daemon.ok("commit", name, f"{repo}:1")
        daemon.ok("push", f"{repo}:1", timeout=120)
        out = daemon.ok("search", f"{registry.host}/searched")
        assert out.splitlines()[0].split()[:2] == ["NAME", "DESCRIPTION"]
        assert repo in out
        assert repo not in daemon.ok("search", f"{registry.host}/nothing-like-it")
        assert repo not in daemon.ok("search", "--filter", "is-official=true",
                                     f"{registry.host}/searched")
        with daemon.http() as http:
            found = http.get("/v1.45/images/search",
                             params={"term": f"{registry.host}/searched", "limit": "1"}).json()
            assert found == [{"name": repo, "description": "", "star_count": 0,
                              "is_official": False, "is_automated": False}]
            for params in ({"term": "x", "limit": "0"}, {"term": "x", "limit": "y"},
                           {"term": "x", "filters": '{"bogus": ["1"]}'},
                           {"term": "x", "filters": '{"stars": ["many"]}'}, {}):
                assert http.get("/v1.45/images/search", params=params).status_code == 400
        daemon.ok("rmi", f"{repo}:1")
    finally:
        daemon.docker("rm", "-f", name)


def _events(daemon: Daemon, name: str, since: str) -> list[str]:
    out = daemon.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                    "--filter", f"container={name}", "--format", "{{.Action}}")
    return [a for a in out.split() if a in ("pause", "unpause", "commit")]


def test_commit_pauses(daemon: Daemon) -> None:
    """POST /commit?pause=true (docker commit's default) freezes the container while its
    layer is read, then thaws it; --pause=false leaves it running; a paused one stays
    paused."""
    name = _name()
    daemon.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "head -c 10000000 /dev/zero > /big; while true; do date >> /log; "
              "sleep 0.01; done")
    try:
        until(lambda: "/log" in daemon.ok("diff", name))
        since = str(int(time.time()) - 1)
        seen: set[str] = set()
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.add(daemon.ok("inspect", "-f", "{{.State.Status}}", name).strip())
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            image = daemon.ok("commit", name, timeout=120).strip()
        finally:
            stop.set()
            watcher.join()
        assert "paused" in seen, seen  # frozen while the layer was read
        assert daemon.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "running"
        assert _events(daemon, name, since) == ["pause", "commit", "unpause"]
        daemon.ok("rmi", image)

        time.sleep(1.1)  # --since counts whole seconds
        since = str(int(time.time()))
        image = daemon.ok("commit", "--pause=false", name, timeout=120).strip()
        assert _events(daemon, name, since) == ["commit"]
        daemon.ok("rmi", image)

        daemon.ok("pause", name)
        time.sleep(1.1)
        since = str(int(time.time()))
        image = daemon.ok("commit", name, timeout=120).strip()
        assert daemon.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "paused"
        assert _events(daemon, name, since) == ["commit"]
        daemon.ok("rmi", image)
    finally:
        daemon.docker("rm", "-f", name)
