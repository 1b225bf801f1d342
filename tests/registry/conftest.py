"""Real registries for the registry client's tests, on loopback ports of their own.

- ``plain_registry``: ../shared/registry/start-registry.sh (plain HTTP), seeded with the
  fixtures by seed-registry.sh.
- ``auth_registry``: the same script with ``--auth`` (HTTPS with its own CA, htpasswd basic
  auth), seeded with busybox.
- ``token_registry``: the same docker-registry binary with a ``token`` auth config of our own
  and a small token server (``tokenserver.py``) issuing RS256 JWTs, for the Bearer flow.

Each registry's state lives in a pytest temp dir, records go to a private
SAMPAN_REGISTRY_RUN, and teardown stops it and deletes its storage.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sampan.images import ImageStore

from .tokenserver import TokenServer

SHARED = Path(__file__).resolve().parents[3] / "shared"
SCRIPTS = SHARED / "registry"
FIXTURES = SHARED / "fixtures" / "images"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    url: str
    dir: Path
    ca: str | None = None
    user: str | None = None
    password: str | None = None

    @property
    def log(self) -> Path:
        return self.dir / "registry.log"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _parse_env(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value.strip("'\"")
    return out


@pytest.fixture(scope="session")
def index() -> dict[str, Any]:
    with open(FIXTURES / "INDEX.json") as f:
        return {image["name"]: image for image in json.load(f)["images"]}


@pytest.fixture(scope="session")
def registry_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private SAMPAN_REGISTRY_RUN: our registries' records stay out of others' way."""
    return tmp_path_factory.mktemp("registry-run")


def _start(registry_run: Path, where: Path, auth: bool) -> Registry:
    env = {**os.environ, "SAMPAN_REGISTRY_RUN": str(registry_run)}
    last = ""
    for _ in range(8):
        port = random.randrange(5100, 5999)
        if not _port_free(port):
            continue
        state = where / f"registry-{port}"
        args = [str(SCRIPTS / "start-registry.sh"), "--port", str(port), str(state)]
        if auth:
            args.insert(1, "--auth")
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        if proc.returncode == 0:
            info = _parse_env(proc.stdout)
            return Registry(host=info["REGISTRY"], url=info["REGISTRY_URL"], dir=state,
                            ca=info.get("REGISTRY_CA"), user=info.get("REGISTRY_USER"),
                            password=info.get("REGISTRY_PASSWORD"))
        last = proc.stderr
        shutil.rmtree(state, ignore_errors=True)
    raise RuntimeError(f"could not start a registry: {last}")


def _stop(registry_run: Path, registry: Registry) -> None:
    env = {**os.environ, "SAMPAN_REGISTRY_RUN": str(registry_run)}
    port = registry.host.rsplit(":", 1)[1]
    subprocess.run([str(SCRIPTS / "stop-registry.sh"), "--port", port, "--purge"], env=env,
                   capture_output=True, timeout=60, check=False)
    shutil.rmtree(registry.dir, ignore_errors=True)


def _seed(registry_run: Path, registry: Registry, only: list[str]) -> None:
    env = {**os.environ, "SAMPAN_REGISTRY_RUN": str(registry_run)}
    args = [str(SCRIPTS / "seed-registry.sh"), registry.host]
    for name in only:
        args += ["--only", name]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


SEEDED = ["busybox", "layers", "httpd", "busybox-oci", "busybox-zstd", "multiarch"]


@pytest.fixture(scope="session")
def plain_registry(registry_run: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = _start(registry_run, tmp_path_factory.mktemp("plain"), auth=False)
    try:
        _seed(registry_run, registry, SEEDED)
        yield registry
    finally:
        _stop(registry_run, registry)


@pytest.fixture(scope="session")
def auth_registry(registry_run: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = _start(registry_run, tmp_path_factory.mktemp("auth"), auth=True)
    try:
        _seed(registry_run, registry, ["busybox"])
        yield registry
    finally:
        _stop(registry_run, registry)


@dataclass
class TokenRegistry(Registry):
    tokens: TokenServer | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """docker-registry with Bearer token auth against our token server."""
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry is missing (scripts/install.sh installs it)")
    where = tmp_path_factory.mktemp("token")
    tokens = TokenServer(where, service="sampan-token-test", issuer="sampan-test-issuer",
                         users={"tester": "s3cret"})
    tokens.start()
    port = _free_port()
    (where / "config.yml").write_text(f"""\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {where}/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: sampan-token-test-not-a-secret
auth:
  token:
    realm: {tokens.url}/token
    service: sampan-token-test
    issuer: sampan-test-issuer
    rootcertbundle: {tokens.cert}
""")
    log = open(where / "registry.log", "ab")  # closed at teardown
    proc = subprocess.Popen(["docker-registry", "serve", str(where / "config.yml")],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/"},
                            start_new_session=True)
    registry = TokenRegistry(host=f"127.0.0.1:{port}", url=f"http://127.0.0.1:{port}",
                             dir=where, user="tester", password="s3cret", tokens=tokens)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{registry.url}/v2/").status_code == 401:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry (token auth) did not start: "
                                   + (where / "registry.log").read_text()[-2000:])
            time.sleep(0.1)
        yield registry
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        tokens.stop()
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "store"))
    yield s
    s.close()


@pytest.fixture
def other_store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "other-store"))
    yield s
    s.close()


def store_state(store: ImageStore) -> dict[str, Any]:
    """What a user could observe of a store, to check a failure changed nothing."""
    return {
        "refs": store.db.refs(),
        "images": [r.id for r in store.db.images()],
        "blobs": list(store.content.walk()),
        "snapshots": [(i.key, i.kind) for i in store.snapshots.walk()],
        "ingest": os.listdir(os.path.join(store.content.root, "ingest")),
        "tmp": os.listdir(os.path.join(store.content.root, "tmp")),
    }
