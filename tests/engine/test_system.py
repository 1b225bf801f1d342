"""_ping, version, info and API versions, through raw HTTP and the docker CLI."""

from __future__ import annotations

import json

from .conftest import Daemon


def test_ping_headers(daemon: Daemon) -> None:
    with daemon.http() as http:
        for method in ("GET", "HEAD"):
            response = http.request(method, "/_ping")
            assert response.status_code == 200
            assert response.headers["API-Version"] == "1.45"
            assert response.headers["OSType"] == "linux"
        assert http.get("/_ping").text == "OK"
        assert http.get("/v1.40/_ping").status_code == 200


def test_version_negotiation(daemon: Daemon) -> None:
    out = json.loads(daemon.ok("version", "--format", "{{json .}}"))
    assert out["Server"]["ApiVersion"] == "1.45"
    assert out["Server"]["MinAPIVersion"] == "1.24"
    assert out["Client"]["ApiVersion"] == "1.45"  # the v28 CLI downgraded itself


def test_too_old_and_too_new(daemon: Daemon) -> None:
    with daemon.http() as http:
        old = http.get("/v1.12/version")
        assert old.status_code == 400
        assert old.headers["Content-Type"] == "application/json"
        assert old.json()["message"] == (
            "client version 1.12 is too old. Minimum supported API version is 1.24, please "
            "upgrade your client to a newer version")
        new = http.get("/v1.99/version")
        assert new.status_code == 400 and "too new" in new.json()["message"]
        assert http.get("/v1.24/version").status_code == 200
        missing = http.get("/v1.45/no/such/endpoint")
        assert missing.status_code == 404 and missing.json() == {"message": "page not found"}


def test_info(daemon: Daemon) -> None:
    info = json.loads(daemon.ok("info", "--format", "{{json .}}"))
    assert info["ServerVersion"]
    assert info["OSType"] == "linux"
    assert info["DockerRootDir"] == daemon.data_root
    assert info["Images"] >= 1


def test_sigusr1_writes_every_threads_stack_and_the_daemon_goes_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """As dockerd's SIGUSR1 (its goroutines' stacks): what a stuck daemon is doing."""
    import signal
    import time

    from .spawn import spawned

    with spawned([]) as d:
        d.start()
        assert d.proc is not None
        d.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "Current thread" not in d.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = d.log_text()
        assert "Current thread" in log and "most recent call first" in log, log
        assert d.http().get("/_ping").status_code == 200
        assert d.proc.poll() is None
