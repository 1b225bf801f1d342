"""`sampan system check`: an fsck of sampand's state.

The content store (every blob re-hashed, temp files and partial downloads), the databases
(sqlite's integrity check, image records against blobs and snapshots, layer reference
counts, containers' pins), the snapshots (orphans of interrupted unpacks, builds and
creates), the container records, and the host (stale mounts, cgroups, namespaces, veths,
nft rules). ``run`` finds, then with ``repair`` fixes what is safe to fix: orphans are
removed, volumes are never touched. It runs inside sampand (``api/check.py``: what is in
flight is left alone) or offline against a data root no sampand is using (``offline``).
"""

from __future__ import annotations

from . import containers, content, host, metadata, snapshots
from .report import ERROR, ORPHAN, Finding, Report
from .scope import Scope
from .used import gather


def _find(scope: Scope) -> Report:
    """Check everything (host first: mounts go before the directories under them)."""
    report = Report()
    host.check(scope, report)
    containers.check(scope, report)
    metadata.check(scope, report)
    used = gather(scope)
    snapshots.check(scope, used, report)
    content.check(scope, used, report)
    return report


def run(scope: Scope, repair: bool = False, passes: int = 3) -> Report:
    """Find, and with ``repair`` repair; a repair can uncover more (a directory that was
    mounted over is an orphan once unmounted), so it looks again, up to ``passes``."""
    report = _find(scope)
    if not repair:
        return report
    report.repair_all()
    verify, scope.verify_blobs = scope.verify_blobs, False  # blobs were hashed once
    try:
        for _ in range(passes - 1):
            again = _find(scope).findings
            now = {(f.kind, f.subject) for f in again}
            for f in report.findings:  # gone with another repair (a foreign key restored)
                if not f.repaired and f.kind not in content.HASHED and \
                        (f.kind, f.subject) not in now:
                    f.repaired = True
            seen = {(f.kind, f.subject) for f in report.findings}
            new = [f for f in again if (f.kind, f.subject) not in seen]
            if not any(f.repair for f in new):
                break
            report.findings.extend(new)
            report.repair_all()
    finally:
        scope.verify_blobs = verify
    return report


__all__ = ["ERROR", "ORPHAN", "Finding", "Report", "Scope", "run"]
