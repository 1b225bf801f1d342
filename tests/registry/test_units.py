"""The registry client's pure parts: config.json credentials, challenges, insecure
registries, error wording, progress messages."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sampan.registry import (
    Credentials,
    ProgressEvent,
    RegistryError,
    RegistryOptions,
    default_config_path,
    erase_credentials,
    is_insecure,
    load_credentials,
    store_credentials,
)
from sampan.registry.auth import parse_challenges
from sampan.registry.credentials import INDEX_SERVER
from sampan.registry.errors import ErrorInfo, parse_error_body


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_from_docker_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {
        "127.0.0.1:5000": {"auth": _b64("alice:pa:ss")},
        "https://registry.example.com/v2/": {"auth": _b64("bob:secret")},
        INDEX_SERVER: {"auth": _b64("hubuser:hubpass")},
        "token.example.com": {"identitytoken": "refresh-me"},
        "plain.example.com": {"username": "carol", "password": "pw"},
    }, "credsStore": "desktop"}))
    config = str(path)
    assert load_credentials("127.0.0.1:5000", config) == Credentials("alice", "pa:ss")
    assert load_credentials("registry.example.com", config) == Credentials("bob", "secret")
    assert load_credentials("docker.io", config) == Credentials("hubuser", "hubpass")
    assert load_credentials("token.example.com", config) == \
        Credentials(identity_token="refresh-me")
    assert load_credentials("plain.example.com", config) == Credentials("carol", "pw")
    assert load_credentials("127.0.0.1:5001", config) is None
    assert load_credentials("anything", str(tmp_path / "missing.json")) is None
    assert "pa:ss" not in repr(load_credentials("127.0.0.1:5000", config))


def test_credentials_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="loading config file"):
        load_credentials("x", str(path))
    path.write_text(json.dumps({"auths": {"x": {"auth": _b64("no-colon")}}}))
    with pytest.raises(RegistryError, match="not user:password"):
        load_credentials("x", str(path))


def test_store_and_erase_keep_other_settings(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {"https://h:1": {"auth": _b64("old:old")}},
                                "psFormat": "table {{.ID}}"}))
    store_credentials("h:1", Credentials("new", "pw"), str(path))
    doc = json.loads(path.read_text())
    assert doc["psFormat"] == "table {{.ID}}"
    assert doc["auths"] == {"h:1": {"auth": _b64("new:pw")}}
    assert path.stat().st_mode & 0o777 == 0o600
    store_credentials("docker.io", Credentials("me", "x"), str(path))
    assert INDEX_SERVER in json.loads(path.read_text())["auths"]
    assert erase_credentials("h:1", str(path)) is True
    assert erase_credentials("h:1", str(path)) is False
    assert list(json.loads(path.read_text())["auths"]) == [INDEX_SERVER]


def test_default_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert default_config_path() == str(tmp_path / "config.json")
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_config_path() == str(tmp_path / "home" / ".docker" / "config.json")


def test_parse_challenges() -> None:
    [bearer] = parse_challenges(['Bearer realm="https://auth.docker.io/token",'
                                 'service="registry.docker.io",'
                                 'scope="repository:library/busybox:pull,push",'
                                 'error="insufficient_scope"'])
    assert bearer.scheme == "bearer" and bearer.realm == "https://auth.docker.io/token"
    assert bearer.params["scope"] == "repository:library/busybox:pull,push"
    assert bearer.params["error"] == "insufficient_scope"
    basic, other = parse_challenges(['Basic realm="a \\"quoted\\" realm", Newauth foo=bar'])
    assert basic.scheme == "basic" and basic.realm == 'a "quoted" realm'
    assert other.scheme == "newauth" and other.params == {"foo": "bar"}
    assert parse_challenges([""]) == []


@pytest.mark.parametrize(("domain", "listed", "insecure"), [
    ("127.0.0.1:5000", (), True),
    ("127.0.1.1", (), True),
    ("localhost:5000", (), True),
    ("[::1]:5000", (), True),
    ("registry.example.com", (), False),
    ("docker.io", (), False),
    ("registry.example.com:5000", ("registry.example.com:5000",), True),
    ("registry.example.com:5000", ("registry.example.com",), True),
    ("10.1.2.3:5000", ("10.0.0.0/8",), True),
    ("192.168.1.1:5000", ("10.0.0.0/8",), False),
])
def test_insecure_registries(domain: str, listed: tuple[str, ...], insecure: bool) -> None:
    assert is_insecure(domain, RegistryOptions(insecure_registries=listed)) is insecure


def test_loopback_can_be_made_secure() -> None:
    assert not is_insecure("127.0.0.1:5000", RegistryOptions(insecure_loopback=False))


def test_error_wording() -> None:
    errors = parse_error_body(b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":'
                              b'"manifest unknown","detail":{"Tag":"x"}}]}')
    assert [str(e) for e in errors] == ["manifest unknown: manifest unknown"]
    assert parse_error_body(b'{"details":"incorrect username or password"}') == \
        (ErrorInfo("UNAUTHORIZED", "incorrect username or password"),)
    assert parse_error_body(b"<html>") == ()


def test_progress_messages() -> None:
    event = ProgressEvent("Downloading", "b1adf2881bd4", current=10, total=20)
    assert event.message() == {"status": "Downloading", "id": "b1adf2881bd4",
                               "progressDetail": {"current": 10, "total": 20}}
    assert str(event) == "b1adf2881bd4: Downloading 10/20"
    assert ProgressEvent("Pull complete", "b1adf2881bd4").message() == {
        "status": "Pull complete", "id": "b1adf2881bd4", "progressDetail": {}}
    assert ProgressEvent("Digest: sha256:x").message() == {"status": "Digest: sha256:x"}
