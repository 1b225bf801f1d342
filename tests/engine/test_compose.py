"""docker-compose (Debian's 1.29, a docker-py client) drives sampand unchanged: a project
with a published web service, a client that finds it by name on the project's network,
a shared named volume and a restart policy; `down -v` takes everything away again."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.engine.conftest import FIXTURES, Daemon

from .test_network_modes import PAGE

COMPOSE = shutil.which("docker-compose")

PROJECT = """\
version: "3.8"
services:
  web:
    image: httpd
    ports: ["127.0.0.1:{port}:80"]
  client:
    image: busybox
    command: sh -c "until nslookup web; do sleep 0.2; done; echo resolved > /data/web; sleep 600"
    volumes: ["data:/data"]
    depends_on: [web]
    restart: unless-stopped
volumes:
  data: {{}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compose(d: Daemon, project: Path, *args: str) -> str:
    assert COMPOSE is not None
    result = subprocess.run([COMPOSE, "--no-ansi", *args], cwd=project, env=d.env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def test_compose_up_and_down(daemon: Daemon, tmp_path: Path) -> None:
    if COMPOSE is None:
        pytest.fail("docker-compose is missing: scripts/install.sh installs it")
    if "httpd" not in daemon.ok("images", "--format", "{{.Repository}}"):
        daemon.ok("load", "-i", str(FIXTURES / "httpd.docker.tar"), timeout=120)
    project = tmp_path / "proj"
    project.mkdir()
    port = free_port()
    (project / "docker-compose.yml").write_text(PROJECT.format(port=port))
    try:
        compose(daemon, project, "up", "-d")
        assert PAGE in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
        deadline = time.monotonic() + 30
        found = ""
        while time.monotonic() < deadline and not found:
            found = daemon.docker("exec", "proj_client_1", "cat", "/data/web").stdout.strip()
            time.sleep(0.3)
        assert found == "resolved"
        client = json.loads(daemon.ok("inspect", "proj_client_1"))[0]
        assert client["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert "proj_default" in client["NetworkSettings"]["Networks"]
        listed = compose(daemon, project, "ps")
        assert "proj_web_1" in listed and "proj_client_1" in listed
    finally:
        compose(daemon, project, "down", "-v")
    assert "proj_" not in daemon.ok("ps", "-a", "--format", "{{.Names}}")
    assert "proj_default" not in daemon.ok("network", "ls", "--format", "{{.Name}}")
    assert "proj_data" not in daemon.ok("volume", "ls", "--format", "{{.Name}}")
