"""`docker load` of what sampan saves, in a real dockerd (Debian's docker.io) that this test
starts on its own socket and directories (no bridge, no iptables), runs and stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampan.images import ImageStore, save

from .conftest import load_fixture

pytestmark = pytest.mark.peers

LAYERS_OUTPUT = ("layers: entrypoint=ran user=app uid=1000 gid=1000 groups=1000 50 "
                 "cwd=/home/app/work greeting=hello world")


@pytest.fixture(scope="module")
def docker() -> Iterator[list[str]]:
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is missing: scripts/install.sh installs docker.io")
    work = tempfile.mkdtemp(prefix="sampan-dockerd-")
    sock = os.path.join(work, "docker.sock")
    with open(os.path.join(work, "dockerd.log"), "wb") as log:
        daemon = subprocess.Popen(
            ["dockerd", "--data-root", f"{work}/data", "--exec-root", f"{work}/exec",
             "--pidfile", f"{work}/dockerd.pid", "-H", f"unix://{sock}", "--bridge=none",
             "--iptables=false", "--ip6tables=false", "--ip-masq=false",
             "--containerd-namespace", "sampan-test", "--containerd-plugins-namespace",
             "sampan-test-plugins"], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    client = ["/usr/bin/docker", "-H", f"unix://{sock}"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*client, "version"], capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dockerd did not start: " +
                            Path(work, "dockerd.log").read_text()[-2000:])
            time.sleep(0.2)
        yield client
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f if work in line.split()[1]]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_docker_loads_and_runs_what_sampan_saves(docker: list[str], store: ImageStore,
                                                 index: dict[str, Any],
                                                 tmp_path: Path) -> None:
    load_fixture(store, "layers.docker.tar")
    store.tag("layers", "sampan-saved/layers:v1")
    archive = tmp_path / "saved.tar"
    with open(archive, "wb") as out:
        save(store, ["sampan-saved/layers:v1"], out)
    loaded = subprocess.run([*docker, "load", "-i", str(archive)], check=True,
                            capture_output=True, text=True).stdout
    assert loaded.strip() == "Loaded image: sampan-saved/layers:v1"
    [info] = json.loads(subprocess.run([*docker, "image", "inspect", "sampan-saved/layers:v1"],
                                       check=True, capture_output=True, text=True).stdout)
    assert info["Id"] == index["layers"]["image_id"]
    assert info["RootFS"]["Layers"] == [la["diff_id"] for la in index["layers"]["layers"]]
    run = subprocess.run([*docker, "run", "--rm", "--network", "none",
                          "sampan-saved/layers:v1"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == LAYERS_OUTPUT
    subprocess.run([*docker, "rmi", "sampan-saved/layers:v1"], check=True, capture_output=True)
