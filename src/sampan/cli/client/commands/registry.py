"""search, login, logout."""

from __future__ import annotations

import sys

from .... import humanize
from .. import auth
from ..errors import CommandError
from ..flags import BOOL, INT, LIST, STR, Opt
from . import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli

SEARCH_HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
                  "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"}


class SearchRow:
    def __init__(self, r: dict[str, Any], trunc: bool) -> None:
        self.r, self.trunc = r, trunc

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(SEARCH_HEADERS)}

    @property
    def Name(self) -> str:
        return str(self.r.get("name", ""))

    @property
    def Description(self) -> str:
        text = (self.r.get("description") or "").replace("\n", " ")
        return humanize.ellipsis(text, 45) if self.trunc else text

    @property
    def StarCount(self) -> str:
        return str(self.r.get("star_count", 0))

    @property
    def IsOfficial(self) -> str:
        return "[OK]" if self.r.get("is_official") else ""

    @property
    def IsAutomated(self) -> str:
        return "[OK]" if self.r.get("is_automated") else ""


def search(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("f,filter", LIST, "Filter output based on conditions provided"),
            Opt("format", STR, "Pretty-print search using a Go template"),
            Opt("limit", INT, "Max number of search results"),
            Opt("no-trunc", BOOL, "Don't truncate output")]
    p = parse("search", "[OPTIONS] TERM", "Search Docker Hub for images", opts, argv, 1, 1)
    if p is None:
        return 0
    from ..api import filters_param
    from ..output import render

    results = cli.client.get("/images/search", {"term": p.args[0], "limit": p.limit,
                                                "filters": filters_param(p.filter)})
    rows = [SearchRow(r, not p.no_trunc) for r in results or []]
    render(p.format or "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t"
           "{{.IsOfficial}}", rows, SEARCH_HEADERS)
    return 0


def login(cli: Cli, argv: list[str]) -> int:
    opts = [Opt("p,password", STR, "Password or Personal Access Token (PAT)"),
            Opt("password-stdin", BOOL, "Take the Password or PAT from stdin"),
            Opt("u,username", STR, "Username")]
    p = parse("login", "[OPTIONS] [SERVER]", "Authenticate to a registry", opts, argv, 0, 1)
    if p is None:
        return 0
    server = p.args[0] if p.args else auth.INDEX_SERVER
    key = auth.key_of(server)
    username, password = p.username, p.password
    if p.password_stdin:
        if p.password:
            raise CommandError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise CommandError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\n").rstrip("\r")
    elif password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=sys.stderr)
    if not username:
        sys.stdout.write("Username: ")
        sys.stdout.flush()
        username = sys.stdin.readline().strip()
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    if not username or not password:
        raise CommandError("Error: Cannot perform an interactive login from a non TTY "
                           "device")
    answer = cli.client.post("/auth", None, {"username": username, "password": password,
                                             "serveraddress": key})
    doc = auth.read_config(cli.config_dir)
    auths = doc.setdefault("auths", {})
    for name in [n for n in auths if auth._host(n) == auth._host(key)]:
        del auths[name]
    import base64

    if answer.get("IdentityToken"):
        auths[key] = {"identitytoken": answer["IdentityToken"]}
    else:
        auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    auth.write_config(cli.config_dir, doc)
    print(answer.get("Status") or "Login Succeeded")
    return 0


def logout(cli: Cli, argv: list[str]) -> int:
    p = parse("logout", "[SERVER]", "Log out from a registry", [], argv, 0, 1)
    if p is None:
        return 0
    server = p.args[0] if p.args else auth.INDEX_SERVER
    key = auth.key_of(server)
    doc = auth.read_config(cli.config_dir)
    auths = doc.get("auths") or {}
    names = [n for n in auths if auth._host(n) == auth._host(key)]
    if not names:
        print(f"Not logged in to {server}")
        return 0
    print(f"Removing login credentials for {auth._host(key) if server != key else key}")
    for name in names:
        del auths[name]
    auth.write_config(cli.config_dir, doc)
    return 0
