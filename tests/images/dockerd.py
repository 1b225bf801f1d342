"""A dockerd of one's own (Debian's docker.io, 20.10): data root, exec root, pidfile and
socket under a private directory, no bridge and no iptables, so that it leaves the host's
networking and any other dockerd alone. The interchange tests and bench/images.py use it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

DOCKER = "/usr/bin/docker"


@contextmanager
def private_dockerd(work: str, *extra: str, netns: str | None = None,
                    client: str = DOCKER) -> Iterator[list[str]]:
    """Start dockerd under ``work`` (with ``extra`` arguments); yield the client command
    line; stop it by its pid and unmount what it left. Given ``netns`` (a name under
    /run/netns), dockerd runs in that network namespace with its default bridge and
    iptables rules, which all go with the namespace."""
    if shutil.which("dockerd") is None:
        raise RuntimeError("dockerd is missing: scripts/install.sh installs docker.io")
    base = os.path.join(work, "docker")
    sock = os.path.join(base, "docker.sock")
    os.makedirs(base)
    namespace = f"sampan-{os.getpid()}"
    with open(os.path.join(base, "dockerd.log"), "wb") as log:
        isolation = (["--bridge=none", "--iptables=false", "--ip6tables=false",
                      "--ip-masq=false"] if netns is None else [])
        enter = [] if netns is None else ["nsenter", f"--net=/run/netns/{netns}"]
        daemon = subprocess.Popen(
            [*enter, "dockerd", "--data-root", f"{base}/data", "--exec-root", f"{base}/exec",
             "--pidfile", f"{base}/dockerd.pid", "-H", f"unix://{sock}", *isolation,
             "--containerd-namespace", namespace, "--containerd-plugins-namespace",
             f"{namespace}-plugins", *extra], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    argv = [client, "-H", f"unix://{sock}"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*argv, "version"], capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(base, "dockerd.log"), errors="replace") as f:
                    raise RuntimeError("dockerd did not start: " + f.read()[-2000:])
            time.sleep(0.2)
        yield argv
    finally:
        os.kill(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f if line.split()[1].startswith(base)]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
