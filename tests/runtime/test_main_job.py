"""The README's main job: a bundle made from Debian's static busybox, run by sampan-runtime."""

from __future__ import annotations

import os
import subprocess

from .helpers import Runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_busybox_bundle_script_makes_a_runnable_bundle(sampan: Runtime, tmp_path) -> None:
    bundle = tmp_path / "bundle"
    # Run from elsewhere: the script must find the runtime whatever the caller's cwd.
    made = subprocess.run(["sh", os.path.join(ROOT, "scripts/make-busybox-bundle.sh"),
                           str(bundle), "sh", "-c", "echo made by $(hostname); exit 4"],
                          cwd=str(tmp_path), capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    result = sampan("run", "--bundle", str(bundle), "main-job")
    assert result.stdout == "made by runc\n", result.stderr
    assert result.returncode == 4
