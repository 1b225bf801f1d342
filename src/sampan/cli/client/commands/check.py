"""`sampan system check`: sampan's fsck of the store, databases, snapshots and host state,
through sampand (POST /sampan/system/check) or, with --offline, directly on a data root no
sampand is using. Exit status 1 while corruption remains (orphans alone are not)."""

from __future__ import annotations

import sys

from ..errors import CommandError
from ..flags import BOOL, STR, Opt
from . import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli

OPTS = [Opt("repair", BOOL, "Repair what is safe to repair (orphans, temp files, stale "
                            "host state; never volumes)"),
        Opt("format", STR, "Output: table (default) or json"),
        Opt("no-verify", BOOL, "Do not re-hash every blob"),
        Opt("offline", BOOL, "Check a data root directly (no sampand may be using it)"),
        Opt("data-root", STR, "With --offline: the data root (default /var/lib/sampan)"),
        Opt("exec-root", STR, "With --offline: the exec root (default /run/sampan)"),
        Opt("cgroup-parent", STR, "With --offline: sampand's cgroup parent (default /sampan)"),
        Opt("bridge", STR, "With --offline: sampand's default bridge (default: as recorded)")]

HEADERS = {"Area": "AREA", "Severity": "SEVERITY", "Kind": "KIND", "Object": "OBJECT",
           "Detail": "DETAIL", "Status": "STATUS"}


def _offline(p: Any) -> dict[str, Any]:
    from ....check import run
    from ....check.offline import DaemonRunning, offline

    kwargs = {key: value for key, value in (
        ("data_root", p.data_root), ("exec_root", p.exec_root),
        ("cgroup_parent", p.cgroup_parent), ("bridge", p.bridge)) if value}
    try:
        with offline(**kwargs) as scope:
            scope.verify_blobs = not p.no_verify
            return run(scope, p.repair).to_json()
    except (DaemonRunning, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None


def _status(f: dict[str, Any]) -> str:
    if f["Repaired"]:
        return "repaired"
    if f["RepairError"]:
        return f"repair failed: {f['RepairError']}"
    return "repairable" if f["Repairable"] else "-"


def check(cli: Cli, argv: list[str]) -> int:
    p = parse("system check", "[OPTIONS]",
              "Check (and repair) the image store, databases, snapshots and host state",
              OPTS, argv, 0, 0)
    if p is None:
        return 0
    fmt = p.format or "table"
    if fmt not in ("table", "json"):
        raise CommandError(f"--format: expected table or json, got {fmt!r}", 125)
    if not p.offline and (p.data_root or p.exec_root or p.cgroup_parent or p.bridge):
        raise CommandError("--data-root, --exec-root, --cgroup-parent and --bridge go with "
                           "--offline", 125)
    if p.offline:
        report = _offline(p)
    else:
        params = {"repair": "1" if p.repair else None, "verify": "0" if p.no_verify else None}
        report = cli.client.post("/sampan/system/check",
                                 {k: v for k, v in params.items() if v})
    if fmt == "json":
        from ....oci import jsonio

        sys.stdout.write(jsonio.dumps(report) + "\n")
    else:
        _table(report)
    return 1 if report["Errors"] else 0


def _table(report: dict[str, Any]) -> None:
    findings = report["Findings"]
    if findings:
        from ..output import render

        rows = [{**f, "Status": _status(f)} for f in findings]
        render("table {{.Area}}\t{{.Severity}}\t{{.Kind}}\t{{.Object}}\t{{.Status}}\t"
               "{{.Detail}}", rows, HEADERS)
    checked = ", ".join(f"{n} {what}" for what, n in sorted(report["Checked"].items()))
    repaired = report["Repaired"]
    print(f"Checked: {checked or 'nothing'}")
    print(f"{len(findings)} finding(s): {report['Errors']} error(s) left, "
          f"{report['Remaining']} unrepaired, {repaired} repaired")
