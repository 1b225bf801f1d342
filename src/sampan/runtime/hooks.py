"""OCI lifecycle hooks: programs run with the container's state JSON on stdin.

subprocess is imported only when a config has hooks (most have none and every container
start would pay for it); `load` imports it ahead, for hooks run after pivot_root, where the
host's Python library is out of reach.
"""

from __future__ import annotations

from ..oci import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..oci.spec import Hook


class HookError(Exception):
    """A hook failed or timed out; for the creation hooks this fails the container."""


def load() -> None:
    import subprocess  # noqa: F401


def run(hook_list: Iterable[Hook], state: dict[str, object], phase: str) -> None:
    import subprocess

    payload = jsonio.dumps(state).encode()
    for i, hook in enumerate(hook_list):
        argv = hook.args or [hook.path]
        env = dict(e.split("=", 1) for e in hook.env or [])
        try:
            result = subprocess.run(argv, executable=hook.path, input=payload, env=env,
                                    capture_output=True, timeout=hook.timeout)
        except subprocess.TimeoutExpired:
            raise HookError(f"{phase} hook #{i} ({hook.path}) timed out after "
                            f"{hook.timeout}s") from None
        except OSError as exc:
            raise HookError(f"{phase} hook #{i} ({hook.path}): {exc.strerror}") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise HookError(f"{phase} hook #{i} ({hook.path}) exited with status "
                            f"{result.returncode}" + (f": {detail}" if detail else ""))
