"""What a system check found: one ``Finding`` per problem, with the repair that is safe.

Two severities. An *orphan* is what an interrupted operation left behind (a temp file, a
half-unpacked layer, a snapshot or blob nothing names, a stale mount or cgroup): harmless
for the data, wasted space or host state, removed by ``--repair``. An *error* is
corruption: a blob that no longer hashes to its digest, a record naming something that is
gone, a database that fails its integrity check; repaired only where the repair loses
nothing (a refcount recounted, a pin put back, a layer unpacked again from its blob).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ORPHAN, ERROR = "orphan", "error"


@dataclass
class Finding:
    area: str  # content, metadata, snapshots, containers, host
    kind: str  # a short name of the problem: temp-file, orphan-blob, digest-mismatch...
    severity: str  # ORPHAN or ERROR
    subject: str  # the object: a path, a digest, a snapshot key, a container id
    detail: str
    repair: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    repaired: bool = False
    repair_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"Area": self.area, "Kind": self.kind, "Severity": self.severity,
                "Object": self.subject, "Detail": self.detail,
                "Repairable": self.repair is not None, "Repaired": self.repaired,
                "RepairError": self.repair_error}


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # what was looked at, by kind

    def add(self, area: str, kind: str, severity: str, subject: str, detail: str,
            repair: Callable[[], None] | None = None) -> None:
        self.findings.append(Finding(area, kind, severity, subject, detail, repair))

    def count(self, what: str, n: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + n

    def repair_all(self) -> None:
        """Run every repair, in the order found (each check lists children before
        parents); one failing does not stop the others."""
        for f in self.findings:
            if f.repair is None or f.repaired:
                continue
            try:
                f.repair()
                f.repaired = True
            except Exception as exc:  # reported, never raised: the rest still runs
                f.repair_error = str(exc) or type(exc).__name__

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR and not f.repaired]

    @property
    def remaining(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]

    def to_json(self) -> dict[str, Any]:
        return {"Findings": [f.to_json() for f in self.findings], "Checked": self.checked,
                "Errors": len(self.errors), "Remaining": len(self.remaining),
                "Repaired": sum(1 for f in self.findings if f.repaired),
                "Clean": not self.remaining}
