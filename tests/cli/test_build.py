"""`sampan build` against sampand: the classic builder's output, tags, the cache,
.dockerignore applied before the context is sent, -f outside the context, -q and
--iidfile, a failing step's message and exit code, --rm=false and --force-rm."""

from __future__ import annotations

from pathlib import Path

from ..build.conftest import build_registry  # noqa: F401
from ..engine.conftest import Daemon
from ..registry.conftest import Registry
from .conftest import Cli


def test_build_tags_caches_and_runs(sampan: Cli, cli_daemon: Daemon, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "keep").mkdir(parents=True)
    (ctx / "keep" / "a.txt").write_text("kept\n")
    (ctx / "secret.txt").write_text("never sent\n")
    (ctx / ".dockerignore").write_text("secret.txt\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nARG WHO=nobody\nCOPY . /ctx\nRUN echo \"built for $WHO\" > /who\n"
        "CMD [\"cat\", \"/who\"]\n")
    out = sampan.ok("build", "-t", "cli-built:1", "--build-arg", "WHO=sampan", str(ctx),
                    timeout=180)
    assert "Step 1/5 : FROM busybox" in out and "Successfully tagged cli-built:1" in out
    assert sampan.ok("run", "--rm", "cli-built:1").strip() == "built for sampan"
    listing = sampan.ok("run", "--rm", "cli-built:1", "ls", "-a", "/ctx").split()
    assert "keep" in listing and "secret.txt" not in listing and "Dockerfile" in listing
    again = sampan.ok("build", "-t", "cli-built:1", "--build-arg", "WHO=sampan", str(ctx))
    assert "---> Running in" not in again and "Using cache" in again

    outside = tmp_path / "other.Dockerfile"
    outside.write_text("FROM busybox\nRUN echo from-outside > /o\n")
    iid = tmp_path / "iid"
    quiet = sampan.ok("build", "-q", "-f", str(outside), "--iidfile", str(iid), str(ctx))
    assert quiet.strip().startswith("sha256:") and quiet.strip() == iid.read_text()
    assert sampan.ok("run", "--rm", quiet.strip(), "cat", "/o").strip() == "from-outside"

    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    before = set(sampan.ok("ps", "-aq").split())
    failed = sampan.run("build", "-t", "cli-failed", "--force-rm", str(ctx))
    assert failed.returncode == 3
    assert "returned a non-zero code: 3" in failed.stderr
    assert "cli-failed" not in sampan.ok("images", "--format", "{{.Repository}}")
    assert set(sampan.ok("ps", "-aq").split()) == before
    # without --force-rm the failed step's container stays, as with docker
    assert sampan.run("build", str(ctx)).returncode == 3
    kept = set(sampan.ok("ps", "-aq").split()) - before
    assert len(kept) == 1
    sampan.ok("rm", *kept)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo kept > /k\n")
    sampan.ok("build", "--no-cache", "--rm=false", str(ctx))
    kept = set(sampan.ok("ps", "-aq").split()) - before
    assert len(kept) == 1
    sampan.ok("rm", *kept)
    missing = sampan.run("build", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "not found" in missing.stderr  # as docker build
    sampan.ok("rmi", "cli-built:1", quiet.strip())


def test_build_shows_the_pull_of_its_base(sampan: Cli, cli_daemon: Daemon, tmp_path: Path,
                                          build_registry: Registry,  # noqa: F811
                                          ) -> None:
    base = f"{build_registry.host}/busybox:latest"
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nCMD [\"true\"]\n")
    out = sampan.ok("build", "-t", "cli-pulled:1", str(tmp_path), timeout=180)
    assert "latest: Pulling from busybox" in out and "Digest: sha256:" in out
    assert f"Status: Downloaded newer image for {base}" in out
    assert "Successfully tagged cli-pulled:1" in out
    sampan.ok("rmi", "cli-pulled:1", base)
