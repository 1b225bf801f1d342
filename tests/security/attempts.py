"""Running a list of attacks in one container and reading back which of them worked.

Each attempt is a shell command run inside the container; the script prints one line per
attempt, ``SUCCEEDED: name`` or ``failed: name: <the error>``, so that an assertion message
names the attack that got through and shows why each of the others failed.
"""

from __future__ import annotations

import shlex

from .conftest import Engine

MARK = "ATTEMPTS-DONE"


def script_of(attempts: dict[str, str]) -> str:
    lines = []
    for name, command in attempts.items():
        quoted = shlex.quote(name)
        lines.append(f"if out=$( ({command}) 2>&1 ); then echo SUCCEEDED: {quoted}; "
                     f"else echo failed: {quoted}: $out; fi")
    lines.append(f"echo {MARK}")
    return "\n".join(lines)


def run_attempts(engine: Engine, attempts: dict[str, str], *options: str,
                 exec_in: str = "") -> str:
    """Run ``attempts`` in a fresh default container (or by ``docker exec`` in
    ``exec_in``); the report. Fails if the script itself did not run to its end."""
    script = script_of(attempts)
    if exec_in:
        result = engine.docker("exec", *options, exec_in, "sh", "-c", script)
    else:
        result = engine.attack(script, *options)
    assert MARK in result.stdout, (engine.name, result.stdout, result.stderr)
    return result.stdout


def assert_all_fail(engine: Engine, attempts: dict[str, str], *options: str,
                    exec_in: str = "") -> str:
    report = run_attempts(engine, attempts, *options, exec_in=exec_in)
    succeeded = [line for line in report.splitlines() if line.startswith("SUCCEEDED")]
    assert not succeeded, f"{engine.name}: attacks that worked: {succeeded}\n{report}"
    assert report.count("failed: ") == len(attempts), report
    return report
