"""TLS, Basic auth and Bearer tokens against real registries, credentials from config.json."""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from sampan.images import ImageStore, load
from sampan.registry import (
    Credentials,
    RegistryClient,
    RegistryConnectionError,
    RegistryOptions,
    Unauthorized,
    account,
    load_credentials,
    login,
    logout,
    pull,
    push,
    search,
)

from .conftest import FIXTURES, Registry, TokenRegistry, store_state


def _config(tmp_path: Path, host: str, user: str, password: str) -> str:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return str(path)


def _verified(registry: Registry, config: str | None = None,
              **kwargs: Any) -> RegistryOptions:
    """Options that really check the registry's certificate against its CA."""
    return RegistryOptions(ca_file=registry.ca, insecure_loopback=False,
                           config_path=config, **kwargs)


# TLS + Basic (start-registry.sh --auth) -----------------------------------------------------

def test_tls_basic_auth_good_credentials(auth_registry: Registry, store: ImageStore,
                                         tmp_path: Path, index: dict[str, Any]) -> None:
    assert auth_registry.user and auth_registry.password
    config = _config(tmp_path, auth_registry.host, auth_registry.user, auth_registry.password)
    options = _verified(auth_registry, config)
    with RegistryClient(auth_registry.host, options) as client:
        assert client.ping() == f"https://{auth_registry.host}"
        assert client.auth.challenge is not None and client.auth.challenge.scheme == "basic"
    result = pull(store, f"{auth_registry.host}/busybox", options=options)
    assert result.digest == index["busybox"]["manifest_digest"]
    assert result.image.id == index["busybox"]["image_id"]


def test_tls_default_options_skip_verification_on_loopback(auth_registry: Registry,
                                                           store: ImageStore,
                                                           tmp_path: Path) -> None:
    """Loopback is insecure as in dockerd: HTTPS without checking the certificate."""
    assert auth_registry.user and auth_registry.password
    config = _config(tmp_path, f"https://{auth_registry.host}", auth_registry.user,
                     auth_registry.password)  # a key with a scheme names the same host
    result = pull(store, f"{auth_registry.host}/busybox",
                  options=RegistryOptions(config_path=config))
    assert result.image.layers


def test_tls_ca_from_certs_dir(auth_registry: Registry, store: ImageStore,
                               tmp_path: Path) -> None:
    """Docker's certs.d layout: <dir>/<host:port>/ca.crt."""
    assert auth_registry.ca and auth_registry.user and auth_registry.password
    host_dir = tmp_path / "certs.d" / auth_registry.host
    host_dir.mkdir(parents=True)
    shutil.copy(auth_registry.ca, host_dir / "ca.crt")
    options = RegistryOptions(certs_dir=str(tmp_path / "certs.d"), insecure_loopback=False,
                              credentials=Credentials(auth_registry.user,
                                                      auth_registry.password))
    with RegistryClient(auth_registry.host, options) as client:
        assert client.tags("busybox") == ["latest"]


def test_tls_unknown_authority(auth_registry: Registry, store: ImageStore,
                               tmp_path: Path) -> None:
    options = RegistryOptions(insecure_loopback=False,
                              config_path=str(tmp_path / "none.json"))
    with pytest.raises(RegistryConnectionError) as err:
        pull(store, f"{auth_registry.host}/busybox", options=options)
    assert str(err.value).startswith(f'Get "https://{auth_registry.host}/v2/": x509: '
                                     "certificate signed by unknown authority")


def test_tls_basic_auth_bad_and_missing_credentials(auth_registry: Registry,
                                                    store: ImageStore, tmp_path: Path) -> None:
    before = store_state(store)
    bad = _verified(auth_registry, _config(tmp_path, auth_registry.host, "tester", "wrong"))
    with pytest.raises(Unauthorized) as err:
        pull(store, f"{auth_registry.host}/busybox", options=bad)
    assert str(err.value) == (f"pull access denied for {auth_registry.host}/busybox, "
                              "repository does not exist or may require 'docker login': "
                              "unauthorized: authentication required")
    missing = _verified(auth_registry, str(tmp_path / "no-config.json"))
    with pytest.raises(Unauthorized) as err:
        pull(store, f"{auth_registry.host}/busybox", options=missing)
    assert str(err.value) == (f'Get "https://{auth_registry.host}/v2/busybox/manifests/'
                              'latest": no basic auth credentials')
    assert store_state(store) == before


def test_login_logout_and_push_with_basic_auth(auth_registry: Registry, store: ImageStore,
                                               tmp_path: Path) -> None:
    assert auth_registry.user and auth_registry.password
    config = str(tmp_path / "login" / "config.json")
    options = _verified(auth_registry, config)
    with pytest.raises(Unauthorized) as err:
        login(auth_registry.host, Credentials("tester", "wrong"), options=options)
    assert str(err.value) == (f"login attempt to https://{auth_registry.host}/v2/ failed "
                              "with status: 401 Unauthorized")
    assert load_credentials(auth_registry.host, config) is None
    good = Credentials(auth_registry.user, auth_registry.password)
    assert login(auth_registry.host, good, options=options) == "Login Succeeded"
    assert load_credentials(auth_registry.host, config) == good
    saved = json.loads(Path(config).read_text())["auths"][auth_registry.host]["auth"]
    assert base64.b64decode(saved).decode() == f"{good.username}:{good.password}"

    with open(FIXTURES / "busybox.docker.tar", "rb") as f:
        load(store, f)
    target = f"{auth_registry.host}/pushed-{secrets.token_hex(4)}:v1"
    store.tag("busybox:latest", target)
    result = push(store, target, options=options)  # credentials come from config.json
    with RegistryClient(auth_registry.host, options) as client:
        assert client.get_manifest(target.split("/", 1)[1].split(":")[0], "v1").digest == \
            result.digest
    assert logout(auth_registry.host, options=options) == \
        f"Removing login credentials for {auth_registry.host}"
    assert load_credentials(auth_registry.host, config) is None
    assert logout(auth_registry.host, options=options) == f"Not logged in to {auth_registry.host}"
    with pytest.raises(Unauthorized, match="no basic auth credentials"):
        push(store, target, options=options)


# Bearer tokens (docker-registry with token auth + tests/registry/tokenserver.py) ------------

def test_token_auth_push_with_credentials_pull_anonymously(
        token_registry: TokenRegistry, store: ImageStore, other_store: ImageStore,
        tmp_path: Path, index: dict[str, Any]) -> None:
    tokens = token_registry.tokens
    assert tokens is not None
    with open(FIXTURES / "layers.docker.tar", "rb") as f:
        load(store, f)
    repo = f"team/layers-{secrets.token_hex(4)}"
    target = f"{token_registry.host}/{repo}:v1"
    store.tag("layers:latest", target)

    anonymous = RegistryOptions(config_path=str(tmp_path / "empty.json"))
    with pytest.raises(Unauthorized) as err:
        push(store, target, options=anonymous)
    assert "unauthorized: authentication required" in str(err.value)

    config = _config(tmp_path, token_registry.host, "tester", "s3cret")
    start = len(tokens.requests)
    result = push(store, target, options=RegistryOptions(config_path=config))
    asked = tokens.requests[start:]
    assert all(r["user"] == "tester" and r["service"] == "sampan-token-test" for r in asked)
    assert {s for r in asked for s in r["scopes"]} == {  # type: ignore[attr-defined]
        f"repository:{repo}:pull,push"}
    assert len(asked) <= 2  # cached: not one token per blob

    # Another repository of the same registry: blobs are mounted, with one token for
    # push on the target and pull on the source.
    second = f"{token_registry.host}/{repo}-copy:v1"
    store.tag(target, second)
    start = len(tokens.requests)
    copied = push(store, second, options=RegistryOptions(config_path=config))
    assert copied.pushed == [] and copied.digest == result.digest
    assert {src for _, src in copied.mounted} == {repo}
    assert any(set(r["scopes"]) == {f"repository:{repo}-copy:pull,push",  # type: ignore[call-overload]
                                    f"repository:{repo}:pull"} for r in tokens.requests[start:])

    start = len(tokens.requests)
    back = pull(other_store, f"{token_registry.host}/{repo}:v1", options=anonymous)
    assert back.digest == result.digest and back.image.id == store.get(target).id
    asked = tokens.requests[start:]
    assert asked and all(r["user"] is None for r in asked)
    assert {s for r in asked for s in r["scopes"]} == {  # type: ignore[attr-defined]
        f"repository:{repo}:pull"}


def test_token_auth_wrong_password(token_registry: TokenRegistry, store: ImageStore,
                                   tmp_path: Path) -> None:
    tokens = token_registry.tokens
    assert tokens is not None
    options = RegistryOptions(config_path=_config(tmp_path, token_registry.host, "tester",
                                                  "nope"))
    with pytest.raises(Unauthorized) as err:
        pull(store, f"{token_registry.host}/anything:latest", options=options)
    assert str(err.value) == f'Get "{tokens.url}/token": unauthorized: incorrect username ' \
        "or password"
    with pytest.raises(Unauthorized, match="incorrect username or password"):
        login(token_registry.host, Credentials("tester", "nope"), options=options)
    assert login(token_registry.host, Credentials("tester", "s3cret"), options=options,
                 save=False) == "Login Succeeded"


def test_token_auth_missing_repository(token_registry: TokenRegistry, store: ImageStore,
                                       tmp_path: Path) -> None:
    options = RegistryOptions(config_path=str(tmp_path / "empty.json"))
    with pytest.raises(Exception) as err:
        pull(store, f"{token_registry.host}/never/pushed", options=options)
    assert "manifest unknown" in str(err.value) or "name unknown" in str(err.value)


def test_search_catalog(plain_registry: Registry) -> None:
    names = [r.name for r in search("multi", plain_registry.host)]
    assert names == [f"{plain_registry.host}/multiarch"]


HUB_ANSWER = {"num_pages": 1, "num_results": 2, "page_size": 2, "page": 1, "query": "busy",
              "results": [{"name": "busybox", "description": "Busybox base image.",
                           "star_count": 3000, "is_official": True, "is_automated": False},
                          {"name": "someone/busy-tool", "description": None,
                           "star_count": 3, "is_official": False, "is_automated": True}]}


def test_search_docker_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker.io is searched through Docker Hub's /v1/search API (online); offline, a
    stand-in on loopback answers with a response of Hub's shape."""
    seen: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            body = json.dumps(HUB_ANSWER).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(account, "HUB_SEARCH_URL",
                            f"http://127.0.0.1:{server.server_address[1]}/v1/search")
        results = search("busy", limit=2)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/v1/search?q=busy&n=2"]
    assert [r.as_docker() for r in results] == [
        {"name": "busybox", "description": "Busybox base image.", "star_count": 3000,
         "is_official": True, "is_automated": False},
        {"name": "someone/busy-tool", "description": "", "star_count": 3,
         "is_official": False, "is_automated": True}]
