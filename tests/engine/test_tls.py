"""TCP only with mutual TLS (openssl-made CA, server and client certificates; the real docker
CLI with --tlsverify; a client without a certificate refused), and systemd socket activation
(sampand started with an inherited listening socket and LISTEN_PID/LISTEN_FDS set)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import DOCKER
from .spawn import spawned


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs() -> Iterator[Path]:
    """ca.pem, server-{cert,key}.pem (SAN 127.0.0.1, localhost), client-{cert,key}.pem,
    and a client pair signed by another CA (rogue-*)."""
    d = Path(tempfile.mkdtemp(prefix="sampan-tls-"))
    try:
        for ca in ("ca", "rogue-ca"):
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                     "-keyout", f"{ca}-key.pem", "-out", f"{ca}.pem", "-subj", f"/CN={ca}",
                     cwd=d)
        (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                      "extendedKeyUsage=serverAuth\n")
        (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
        for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                              ("rogue", "rogue-ca", "client.ext")):
            _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
                     "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                     f"{ca}-key.pem", "-CAcreateserial", "-days", "2", "-extfile", ext,
                     "-out", f"{name}-cert.pem", cwd=d)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert DOCKER is not None
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env, timeout=60)


def test_mutual_tls(certs: Path) -> None:
    port = _free_port()
    tcp = f"tcp://127.0.0.1:{port}"
    with spawned(["-H", tcp, "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                  "--tlscert", str(certs / "server-cert.pem"),
                  "--tlskey", str(certs / "server-key.pem")]) as d:
        d.start()  # answers on its unix socket too
        env = {k: v for k, v in d.env.items() if not k.startswith("DOCKER_")}
        env["DOCKER_CONFIG"] = d.env["DOCKER_CONFIG"]
        tls = ["--tlsverify", "--tlscacert", str(certs / "ca.pem")]
        client = ["--tlscert", str(certs / "client-cert.pem"),
                  "--tlskey", str(certs / "client-key.pem")]
        ok = _docker(env, "-H", tcp, *tls, *client, "version", "--format",
                     "{{.Server.APIVersion}}")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "1.45"
        info = _docker(env, "-H", tcp, *tls, *client, "info", "--format", "{{json .Runtimes}}")
        assert info.returncode == 0 and "sampan-runtime" in json.loads(info.stdout)
        # No client certificate: the handshake fails, nothing is served.
        bare = _docker(env, "-H", tcp, *tls, "version")
        assert bare.returncode != 0
        assert "Server:" not in bare.stdout
        # A certificate from another CA: refused too.
        rogue = _docker(env, "-H", tcp, *tls, "--tlscert", str(certs / "rogue-cert.pem"),
                        "--tlskey", str(certs / "rogue-key.pem"), "version")
        assert rogue.returncode != 0 and "Server:" not in rogue.stdout
        # The same at the TLS level, and plain HTTP gets no answer.
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with pytest.raises((ssl.SSLError, httpx.HTTPError, OSError)), httpx.Client(
                verify=context, timeout=10) as http:
            http.get(f"https://127.0.0.1:{port}/_ping").raise_for_status()
        context.load_cert_chain(str(certs / "client-cert.pem"),
                                str(certs / "client-key.pem"))
        with httpx.Client(verify=context, timeout=10) as http:
            assert http.get(f"https://127.0.0.1:{port}/_ping").text == "OK"
        with pytest.raises(httpx.HTTPError), httpx.Client(timeout=10) as http:
            http.get(f"http://127.0.0.1:{port}/_ping").raise_for_status()


def test_tls_files_are_checked(certs: Path) -> None:
    with spawned(["-H", f"tcp://127.0.0.1:{_free_port()}", "--tlsverify",
                  "--tlscacert", str(certs / "ca.pem"), "--tlscert",
                  str(certs / "server-cert.pem")]) as d:
        d.launch()
        assert d.proc is not None
        assert d.proc.wait(timeout=30) == 1
        assert "tlskey: required to serve TCP with --tlsverify" in d.log_text()


def test_socket_activation() -> None:
    """As systemd starts sampand.service: the socket is bound and listening before
    sampand runs, handed over as fd 3 with LISTEN_PID (sampand's pid) and LISTEN_FDS=1."""
    with spawned([], layout=False) as d:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(d.socket)
        os.chmod(d.socket, 0o660)
        listener.listen(16)
        inode = os.stat(d.socket).st_ino
        argv = ["sh", "-c", 'export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=sampan.socket; '
                'exec 3<&0 0</dev/null; exec "$@"', "sh",
                *d.argv(), "-H", "fd://", "--data-root", d.data_root, "--exec-root",
                d.exec_root, "--cgroup-parent", d.cgroup_parent]
        try:
            d.start(argv=argv, stdin=listener.fileno())
        finally:
            listener.close()  # sampand holds its own copy
        assert d.ok("version", "--format", "{{.Server.APIVersion}}").strip() == "1.45"
        # The unit's socket is systemd's: sampand neither replaced nor removed it.
        assert os.stat(d.socket).st_ino == inode
        d.stop()
        assert os.stat(d.socket).st_ino == inode


def test_socket_activation_without_sockets() -> None:
    with spawned(["-H", "fd://"], layout=False) as d:
        d.args += ["--data-root", d.data_root, "--exec-root", d.exec_root]
        d.launch()
        assert d.proc is not None
        assert d.proc.wait(timeout=30) == 1
        assert "no sockets were passed by systemd" in d.log_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units_verify(tmp_path: Path) -> None:
    """contrib/systemd's units are valid, start sampand with -H fd:// and the socket is
    root:sampan 0660 as docker's is."""
    from .conftest import SAMPAND

    contrib = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
    service = (contrib / "sampan.service").read_text()
    sock = (contrib / "sampan.socket").read_text()
    assert "ExecStart=/usr/local/bin/sampand -H fd://" in service
    assert "SocketMode=0660" in sock and "SocketGroup=sampan" in sock
    (tmp_path / "sampan.service").write_text(
        service.replace("/usr/local/bin/sampand", SAMPAND))
    (tmp_path / "sampan.socket").write_text(sock)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no",
                             str(tmp_path / "sampan.socket"), str(tmp_path / "sampan.service")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
