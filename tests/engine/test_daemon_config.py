"""daemon.json and sampand's flags: a clear error naming the key (exit status 1) for what is
wrong, and what is right seen through the docker CLI (info, inspect, the socket's mode)."""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampan.engine.daemonconfig import ConfigError, load_file, merge
from sampan.network.ipam import Pool

from .conftest import FIXTURES, Daemon
from .spawn import run_sampand, spawned, started

RUNC = shutil.which("runc")


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sampan-cfg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def refused(tmp: Path, config: dict[str, Any] | str | None, *flags: str) -> str:
    """sampand's error for this daemon.json and flags (it must exit 1 at once)."""
    args = list(flags)
    if config is not None:
        path = tmp / "daemon.json"
        path.write_text(config if isinstance(config, str) else json.dumps(config))
        args = ["--config-file", str(path), *args]
    args += ["--exec-root", str(tmp / "exec")] if "exec-root" not in str(config) else []
    result = run_sampand(*args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("sampand: ") or "usage:" in result.stderr
    return result.stderr


@pytest.mark.parametrize(("config", "expected"), [
    ({"data-root": "/tmp/x", "no-such-key": 1}, "don't match any configuration option: "
     "no-such-key"),
    ({"data-root": 5}, "data-root: expected string, got integer"),
    ({"debug": "yes"}, "debug: expected boolean, got string"),
    ({"log-driver": "syslog"}, "log-driver: unsupported logging driver 'syslog'"),
    ({"log-opts": {"max-size": "ten"}}, "log-opts: max-size: invalid size 'ten'"),
    ({"log-opts": {"max-file": "3"}}, "max-file cannot be set when max-size is not set"),
    ({"log-opts": {"colour": "red"}}, "log-opts: unknown log opt 'colour'"),
    ({"default-address-pools": [{"base": "10.300.0.0/16", "size": 24}]},
     "default-address-pools[0].base: invalid IPv4 network '10.300.0.0/16'"),
    ({"default-address-pools": [{"base": "10.30.0.0/16", "size": 8}]},
     "default-address-pools[0].size: 8 must be between"),
    ({"runtimes": {"runc": {"path": "/bin/true"}}}, "runtimes: runtime name 'runc' is reserved"),
    ({"runtimes": {"mine": {"path": "/no/such/runtime"}}},
     "runtimes.mine.path: '/no/such/runtime': no such executable"),
    ({"default-runtime": "crun9"}, "default-runtime: unknown runtime 'crun9'"),
    ({"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 10, "Hard": 5}}},
     "default-ulimits.nofile: ulimit soft limit must be less than or equal to hard limit"),
    ({"default-ulimits": {"files": {"Name": "files", "Soft": 1, "Hard": 1}}},
     "default-ulimits: invalid ulimit type: files"),
    ({"registry-mirrors": ["mirror.example"]}, "registry-mirrors: invalid mirror: no scheme"),
    ({"hosts": ["http://x"]}, "hosts: 'http://x': unsupported scheme 'http'"),
    ({"group": "no-such-group-here"}, "group: group 'no-such-group-here' not found"),
    ({"bridge": "name-far-too-long"}, "bridge: 'name-far-too-long' is not a valid interface"),
    ({"monitor": "runc"}, "monitor: 'runc' is not one of sampan, conmon"),
    ({"cgroup-parent": "relative"}, "cgroup-parent: 'relative' must be an absolute path"),
    ({"seccomp-profile": "/no/such/profile.json"}, "seccomp-profile: /no/such/profile.json"),
    ({"userns-remap": "no-such-user"}, "userns-remap: no such user 'no-such-user'"),
    ({"userns-remap": "root"}, "userns-remap: no subordinate uid ranges found for user 'root'"),
    ("{not json", "invalid JSON"),
    ("[1, 2]", "must hold a JSON object"),
])
def test_bad_configuration_is_named(tmp: Path, config: Any, expected: str) -> None:
    err = refused(tmp, config)
    assert expected in err
    assert "unable to configure the daemon with file" in err
    assert not (tmp / "exec").exists() or not os.listdir(tmp / "exec")


def test_flag_and_file_conflict(tmp: Path) -> None:
    err = refused(tmp, {"data-root": str(tmp / "a"), "debug": True},
                  "--data-root", str(tmp / "b"))
    assert ("the following directives are specified both as a flag and in the configuration "
            f"file: data-root: (from flag: {tmp / 'b'}, from file: {tmp / 'a'})") in err
    err = refused(tmp, {"hosts": ["unix:///tmp/a.sock"]}, "-H", "unix:///tmp/b.sock")
    assert "hosts: (from flag: [unix:///tmp/b.sock], from file: [unix:///tmp/a.sock])" in err
    err = refused(tmp, {"monitor": "conmon"}, "--monitor", "sampan")
    assert "monitor: (from flag: sampan, from file: conmon)" in err


def test_bad_flags(tmp: Path) -> None:
    assert "log-opt: 'nokey': want key=value" in refused(tmp, None, "--log-opt", "nokey")
    assert "invalid boolean 'maybe'" in refused(tmp, None, "--live-restore=maybe")
    assert "argument --monitor: invalid choice: 'runc'" in refused(tmp, None, "--monitor",
                                                                   "runc")
    assert "default-ulimit: 'nofile=a:b': limits must be numbers" in refused(
        tmp, None, "--default-ulimit", "nofile=a:b")
    assert "unrecognized arguments: --no-such-flag" in refused(tmp, None, "--no-such-flag")


def test_missing_config_file(tmp: Path) -> None:
    err = refused(tmp, None, "--config-file", str(tmp / "absent.json"))
    assert f"open {tmp / 'absent.json'}: no such file or directory" in err


def test_plain_tcp_is_refused(tmp: Path) -> None:
    err = refused(tmp, None, "-H", "tcp://127.0.0.1:23750")
    assert "serves TCP only with mutual TLS" in err
    err = refused(tmp, None, "-H", "tcp://127.0.0.1:23750", "--tls")
    assert "serves TCP only with mutual TLS" in err


def test_typed_options() -> None:
    config = merge({"default-address-pools": [{"base": "10.77.0.0/16", "size": 26}],
                    "log-opts": {"max-size": "1m", "max-file": "2"}},
                   {"insecure-registries": ["myreg:5000"]})
    options = config.engine_options()
    assert options.address_pools == [Pool(__import__("ipaddress").IPv4Network("10.77.0.0/16"),
                                          26)]
    assert options.insecure_registries == ["myreg:5000"]
    assert options.container_defaults.log_config == {
        "Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    assert options.default_runtime == "sampan-runtime"
    assert "sampan-runtime" in options.runtimes
    assert merge({}, {}).engine_options().address_pools  # the network library's defaults
    assert merge({}, {}).engine_options().monitor == "sampan"  # the warm monitor by default
    assert merge({}, {"monitor": "conmon"}).engine_options().monitor == "conmon"
    assert merge({"monitor": "conmon"}, {}).engine_options().monitor == "conmon"
    with pytest.raises(ConfigError, match="don't match any configuration option: bogus"):
        path = tempfile.mktemp()
        Path(path).write_text('{"bogus": 1}')
        try:
            load_file(path, required=True)
        finally:
            os.unlink(path)


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_daemon_json_applies(tmp: Path) -> None:
    """A daemon.json with layout, log opts, ulimits, a runtime and registries: what the
    docker CLI sees."""
    with spawned([], layout=False) as d:
        config = {
            "hosts": [d.host], "data-root": d.data_root, "exec-root": d.exec_root,
            "cgroup-parent": d.cgroup_parent, "debug": True,
            "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"},
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1111, "Hard": 2222}},
            "runtimes": {"myrunc": {"path": RUNC}}, "default-runtime": "myrunc",
            "registry-mirrors": ["https://mirror.invalid"],
            "insecure-registries": ["myregistry.invalid:5000"],
            "default-address-pools": [{"base": "10.99.0.0/16", "size": 24}],
        }
        path = Path(d.base) / "daemon.json"
        path.write_text(json.dumps(config))
        d.args = ["--config-file", str(path)]
        d.start()
        info = json.loads(d.ok("info", "--format", "{{json .}}"))
        assert info["DefaultRuntime"] == "myrunc"
        assert info["Runtimes"]["myrunc"]["path"] == RUNC
        assert {"sampan-runtime", "runc", "myrunc"} <= set(info["Runtimes"])
        assert info["Debug"] is True
        assert info["LoggingDriver"] == "json-file"
        assert info["DockerRootDir"] == d.data_root
        assert info["RegistryConfig"]["Mirrors"] == ["https://mirror.invalid"]
        assert "name=seccomp,profile=builtin" in info["SecurityOptions"]
        mode = os.stat(d.socket)
        assert stat.S_IMODE(mode.st_mode) == 0o660 and mode.st_uid == 0
        try:
            expected_gid = grp.getgrnam("sampan").gr_gid
        except KeyError:
            expected_gid = 0
        assert mode.st_gid == expected_gid
        d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
        out = d.ok("run", "--name", "c1", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
        assert out.split() == ["1111", "2222"]
        host = json.loads(d.ok("inspect", "--format", "{{json .HostConfig}}", "c1"))
        assert host["Runtime"] == "myrunc"
        assert host["LogConfig"] == {"Type": "json-file",
                                     "Config": {"max-size": "10m", "max-file": "3"}}
        out = d.ok("run", "--rm", "--ulimit", "nofile=50:60", "busybox", "sh", "-c",
                   "ulimit -n")
        assert out.split() == ["50"]


def test_group_flag_owns_the_socket(tmp: Path) -> None:
    with spawned(["-G", "daemon"]) as d:
        d.start()
        st = os.stat(d.socket)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (
            0o660, 0, grp.getgrnam("daemon").gr_gid)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)  # survived, still answering
        time.sleep(0.5)
        assert d.proc.poll() is None and d.http().get("/_ping").text == "OK"


def test_a_burst_of_clients_queues_while_the_daemon_is_busy(tmp: Path) -> None:
    """300 clients connecting while sampand cannot accept (stopped, as a stalled loop would
    be) all queue and are answered once it runs again: a 128-entry listen queue made the
    129th fail with EAGAIN, as the 200-client load test saw."""
    with spawned([]) as d:
        d.start()
        assert d.proc is not None
        d.proc.send_signal(signal.SIGSTOP)
        clients: list[socket.socket] = []
        try:
            for _ in range(300):
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                clients.append(c)
                c.setblocking(False)
                c.connect(d.socket)  # BlockingIOError (EAGAIN) when the queue is full
                c.setblocking(True)
                c.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        finally:
            d.proc.send_signal(signal.SIGCONT)
        for c in clients:
            c.settimeout(60)
            with c:
                assert c.recv(4096).startswith(b"HTTP/1.1 200")


def test_bridge_none_makes_no_default_network(tmp: Path) -> None:
    """As dockerd's --bridge=none: no "bridge" network, no bridge; a container on the
    default network (or asking for "bridge") has its loopback only; user networks work."""
    with started(["--bridge", "none"]) as d:
        assert sorted(d.ok("network", "ls", "--format", "{{.Name}}").split()) == [
            "host", "none"]
        for extra in ([], ["--network", "bridge"]):
            links = d.ok("run", "--rm", *extra, "busybox", "ip", "-o", "link").splitlines()
            assert [line.split(":")[1].strip() for line in links] == ["lo"], links
        d.ok("network", "create", "--subnet", "10.123.77.0/24", "unet")
        try:
            addr = d.ok("run", "--rm", "--network", "unet", "busybox", "ip", "-o", "-4", "addr")
            assert "10.123.77." in addr
        finally:
            d.ok("network", "rm", "unet")
        links = subprocess.run(["ip", "-o", "link", "show", "none"], capture_output=True)
        assert links.returncode != 0  # no bridge named "none" was made


def _stopped_with_sampand(d: Daemon) -> str:
    """A container run, then sampand stopped: the container must be gone with it."""
    d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
    cid = d.ok("run", "-d", "busybox", "sleep", "600").strip()
    pid = int(d.ok("inspect", "--format", "{{.State.Pid}}", cid))
    assert os.path.exists(f"/proc/{pid}")
    assert d.proc is not None
    d.proc.terminate()
    d.proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}")
    return cid


def test_live_restore_off_stops_containers(tmp: Path) -> None:
    with spawned(["--live-restore=false"]) as d:
        d.start()
        info = json.loads(d.ok("info", "--format", "{{json .}}"))
        assert info["LiveRestoreEnabled"] is False
        cid = _stopped_with_sampand(d)
        d.start()
        state = json.loads(d.ok("inspect", "--format", "{{json .State}}", cid))
        assert state["Status"] == "exited"


def test_api_version_too_old_through_the_cli(tmp: Path) -> None:
    with spawned([]) as d:
        d.start()
        env = {**d.env, "DOCKER_API_VERSION": "1.23"}
        result = subprocess.run(["docker", "version"], capture_output=True, text=True,
                                env=env, timeout=60)
        assert result.returncode != 0
        assert ("client version 1.23 is too old. Minimum supported API version is 1.24, "
                "please upgrade your client to a newer version") in result.stderr
        with d.http() as http:
            assert http.get("/v1.24/_ping").status_code == 200
            assert http.get("/v1.45/version").json()["ApiVersion"] >= "1.45"


def test_registry_mirrors(tmp_path_factory: pytest.TempPathFactory) -> None:
    """registry-mirrors: a Docker Hub pull is served by the first mirror that answers (an
    unreachable one is skipped); there is no Docker Hub here, so success proves it."""
    from ..registry.conftest import _start, _stop

    run = tmp_path_factory.mktemp("registry-run")
    mirror = _start(run, Path(tmp_path_factory.mktemp("mirror")), auth=False)
    try:
        with spawned(["--registry-mirror", "http://127.0.0.1:9", "--registry-mirror",
                      f"http://{mirror.host}"]) as d:
            d.start()
            d.ok("load", "-i", str(FIXTURES / "busybox.docker.tar"))
            image_id = d.ok("inspect", "--format", "{{.Id}}", "busybox").strip()
            d.ok("tag", "busybox", f"{mirror.host}/library/busybox:latest")
            d.ok("push", f"{mirror.host}/library/busybox:latest", timeout=120)
            d.ok("rmi", "busybox", f"{mirror.host}/library/busybox:latest")
            out = d.ok("pull", "busybox", timeout=120)
            assert "Downloaded newer image for busybox:latest" in out
            assert d.ok("inspect", "--format", "{{.Id}}", "busybox").strip() == image_id
            info = json.loads(d.ok("info", "--format", "{{json .RegistryConfig.Mirrors}}"))
            assert info == ["http://127.0.0.1:9", f"http://{mirror.host}"]
            missing = d.docker("pull", "no-such-image-anywhere", timeout=120)
            assert missing.returncode != 0
    finally:
        _stop(run, mirror)


def test_sighup_reloads(tmp: Path) -> None:
    """SIGHUP reads daemon.json again as dockerd does: the reloadable keys applied (docker
    info shows them; live-restore false then stops the containers with sampand), a
    `daemon reload` event with dockerd's attributes, a key the file drops kept, and a file
    that does not pass logged and ignored."""
    with spawned([], layout=False) as d:
        path = Path(d.base) / "daemon.json"
        base = {"hosts": [d.host], "data-root": d.data_root, "exec-root": d.exec_root,
                "cgroup-parent": d.cgroup_parent, "bridge": d.bridge}
        path.write_text(json.dumps({**base, "labels": ["a=1"]}))
        d.args = ["--config-file", str(path)]
        d.start()
        assert d.proc is not None
        info = json.loads(d.ok("info", "--format", "{{json .}}"))
        assert info["Labels"] == ["a=1"] and info["Debug"] is False and info["ID"]
        since = str(time.time())

        def hup(config: dict[str, Any] | str) -> None:
            path.write_text(config if isinstance(config, str) else json.dumps(config))
            assert d.proc is not None
            d.proc.send_signal(signal.SIGHUP)

        def reloads() -> list[dict[str, Any]]:
            out = d.ok("events", "--since", since, "--until", str(time.time()),
                       "--filter", "type=daemon", "--format", "{{json .}}")
            return [json.loads(line) for line in out.splitlines()]

        hup({**base, "debug": True, "labels": ["a=2", "b=3"],
             "registry-mirrors": ["https://mirror.invalid"],
             "insecure-registries": ["myregistry.invalid:5000"], "live-restore": False,
             "runtimes": {"myrunc": {"path": RUNC}}})
        deadline = time.monotonic() + 10
        while not reloads() and time.monotonic() < deadline:
            time.sleep(0.1)
        [event] = reloads()
        assert event["Type"] == "daemon" and event["Action"] == "reload"
        assert event["Actor"]["ID"] == info["ID"]
        attrs = event["Actor"]["Attributes"]
        assert attrs["debug"] == "true" and attrs["labels"] == '["a=2","b=3"]'
        assert attrs["registry-mirrors"] == '["https://mirror.invalid"]'
        assert attrs["insecure-registries"] == '["myregistry.invalid:5000"]'
        assert attrs["live-restore"] == "false" and f"myrunc:{RUNC}" in attrs["runtimes"]
        info = json.loads(d.ok("info", "--format", "{{json .}}"))
        assert info["Labels"] == ["a=2", "b=3"] and info["Debug"] is True
        assert info["RegistryConfig"]["Mirrors"] == ["https://mirror.invalid"]
        assert info["LiveRestoreEnabled"] is False and "myrunc" in info["Runtimes"]
        text = d.ok("info")
        assert " Labels:\n  a=2\n  b=3\n" in text and " Debug Mode: true\n" in text
        assert " Registry Mirrors:\n  https://mirror.invalid\n" in text

        # labels no longer in the file: kept (dockerd applies only the keys set)
        hup({**base, "debug": True, "live-restore": False})
        deadline = time.monotonic() + 10
        while len(reloads()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(reloads()) == 2
        assert json.loads(d.ok("info", "--format", "{{json .Labels}}")) == ["a=2", "b=3"]

        # a file that does not pass: logged, the configuration kept, no event
        for i, bad in enumerate(("{not json", json.dumps({**base, "debug": False, "no-such": 1}),
                                 json.dumps({**base, "labels": ["nolabel"]}))):
            hup(bad)
            deadline = time.monotonic() + 10
            while d.log_text().count("Error reconfiguring the daemon") <= i and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(0.5)
        assert d.log_text().count("Error reconfiguring the daemon") == 3, d.log_text()
        assert d.proc.poll() is None and len(reloads()) == 2
        assert json.loads(d.ok("info", "--format", "{{json .Debug}}")) is True

        _stopped_with_sampand(d)  # the reloaded live-restore false
