"""`sampan system df -v` prints what `docker system df -v` (v28) prints against the same
daemon: the images (first tag, shared and unique sizes, dangling ones as <none>),
containers (local volumes counted, no virtual size), local volumes (links and size) and
build cache tables."""

from __future__ import annotations

import re

from ..engine.conftest import Daemon, unique
from .conftest import Cli
from .test_session import same_as_docker


def test_df_verbose_as_docker(sampan: Cli, cli_daemon: Daemon, tmp_path: object) -> None:
    running, exited, spare = unique("dfv-run"), unique("dfv-exit"), unique("dfv-spare")
    image = f"{unique('dfv')}/img:1"
    sampan.ok("run", "-d", "--name", running, "-v", f"{running}:/data", "busybox", "sh",
              "-c", "head -c 5000 /dev/zero > /data/blob; exec sleep 300 # a long command")
    sampan.ok("run", "--name", exited, "-v", "/tmp:/host:ro", "busybox", "sh", "-c",
              "head -c 120000 /dev/zero > /written")
    sampan.ok("volume", "create", spare)
    committed = sampan.ok("commit", exited, image).strip()
    dangling = sampan.ok("commit", running).strip()
    try:
        out = same_as_docker(sampan, cli_daemon, "system", "df", "-v")
        sections = out.split("\n\n")
        assert sections[0] == "Images space usage:"
        images = sections[1].splitlines()
        assert re.split(r"\s{2,}", images[0]) == [
            "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE",
            "UNIQUE SIZE", "CONTAINERS"]
        mine = next(ln for ln in images if committed.split(":")[1][:12] in ln)
        name, tag = image.rsplit(":", 1)
        assert mine.split()[:2] == [name, tag]
        assert mine.split()[-3:] == ["1.986MB", "120kB", "0"]  # shares busybox's layer
        assert any(ln.startswith("<none>") and dangling.split(":")[1][:12] in ln
                   for ln in images)
        assert sections[2] == "Containers space usage:"
        rows = {re.split(r"\s{2,}", ln)[-1]: re.split(r"\s{2,}", ln)
                for ln in sections[3].splitlines()[1:]}
        assert rows[running][2] == '"sh -c \'head -c 5000…"'
        assert rows[running][3:5] == ["1", "0B"]  # the volume is not its writable layer
        assert rows[exited][3:5] == ["0", "120kB"]  # a bind is not a local volume
        assert sections[4] == "Local Volumes space usage:"
        volumes = {ln.split()[0]: ln.split()[1:] for ln in sections[5].splitlines()[1:]}
        assert volumes[running] == ["1", "5kB"] and volumes[spare] == ["0", "0B"]
        assert sections[6] == "Build cache usage: 0B"
        assert sections[7].split() == ["CACHE", "ID", "CACHE", "TYPE", "SIZE", "CREATED",
                                       "LAST", "USED", "USAGE", "SHARED"]
        templated = sampan.ok("system", "df", "-v", "--format",
                              "{{range .Volumes}}{{.Name}}={{.Links}} {{end}}")
        assert f"{spare}=0 " in templated and f"{running}=1 " in templated
    finally:
        sampan.run("rm", "-f", running, exited)
        sampan.run("rmi", image, dangling)
        sampan.run("volume", "rm", running, spare)
