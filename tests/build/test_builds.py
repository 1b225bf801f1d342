"""Builds through sampand with the real docker CLI (DOCKER_BUILDKIT=0, the classic builder)
and docker-py: the image runs, its config and history, the cache's rules, failures that
leave nothing behind, and reproducible layers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import Daemon

from .contexts import make_context


def build(daemon: Daemon, context: Path, *args: str, timeout: float = 180,
          ) -> subprocess.CompletedProcess[str]:
    env = {**daemon.env, "DOCKER_BUILDKIT": "0"}
    return subprocess.run(["docker", "build", *args, str(context)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def built(daemon: Daemon, context: Path, *args: str) -> str:
    result = build(daemon, context, *args)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def inspect(daemon: Daemon, ref: str) -> dict:
    return json.loads(daemon.ok("image", "inspect", ref))[0]


def image_ids(daemon: Daemon) -> set[str]:
    return set(daemon.ok("images", "-aq", "--no-trunc").split())


def containers(daemon: Daemon) -> list[str]:
    return daemon.ok("ps", "-aq").split()


def ran(output: str) -> int:
    """How many RUN steps ran (rather than came from the cache)."""
    return output.count("---> Running in")


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Path]:
    yield make_context(tmp_path, "everything.Dockerfile")


def test_docker_cli_builds_tags_and_runs(daemon: Daemon, context: Path) -> None:
    out = built(daemon, context, "-t", "built:one", "-t", "built:two", "--build-arg", "V=2")
    assert re.search(r"^Step 1/21 : FROM \$\{BASE\} AS base$", out, re.M)
    assert "Successfully tagged built:one" in out and "Successfully tagged built:two" in out
    image = inspect(daemon, "built:one")
    assert image["Id"] == inspect(daemon, "built:two")["Id"]
    assert re.search(rf"Successfully built {image['Id'][7:19]}", out)
    config = image["Config"]
    assert config["Env"][-3:] == ["A=b", "C=d e", "PATH_EXTRA=2"]
    assert config["WorkingDir"] == "/app/sub"
    assert config["User"] == "1000:1000"
    assert config["Labels"] == {"x": "y", "quoted key": "a b", "from.env": "b"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {},
                                      "8001/tcp": {}}
    assert config["Volumes"] == {"/data": {}, "/other": {}}
    assert config["Cmd"] == ["sh"]
    assert config["Entrypoint"] == ["/bin/sh", "-ec", "echo hi"]
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5000000000,
                                     "Retries": 3}
    assert config["StopSignal"] == "SIGINT"
    assert config["Shell"] == ["/bin/sh", "-ec"]
    assert config["OnBuild"] == ["RUN echo hi"]
    assert image["Author"] == "someone"
    history = json.loads(daemon.ok("history", "--no-trunc", "--format", "{{json .}}",
                                   "built:one").replace("}\n{", "},{").join("[]"))
    created = [h["CreatedBy"] for h in reversed(history)]
    assert created[1:3] == ["/bin/sh -c #(nop)  ARG V=1", "/bin/sh -c #(nop)  ARG UNSET"]
    assert created[10].startswith("|1 V=2 /bin/sh -c echo $V > v")
    sizes = [h["Size"] for h in reversed(history)]
    assert sizes[1:5] == ["0B"] * 4
    assert created[-1] == '/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/sh" "-ec" "echo hi"]'
    # the image runs: files from COPY and RUN are there, owned by root
    listing = daemon.ok("run", "--rm", "--user", "0", "--entrypoint", "sh", "built:one", "-c",
                        "cat /app/sub/v /app/sub/a.txt /s/b /multi/a.txt /multi/b; "
                        "stat -c '%u:%g %a' /app/sub/a.txt")
    assert listing == "2\nhello\nx\nhello\nx\n0:0 644\n"
    assert daemon.ok("run", "--rm", "built:one") == "hi\n"


def test_docker_py_builds_with_logs_and_quiet(daemon: Daemon, docker_client: object,
                                              context: Path) -> None:
    # docker-py's rm defaults to False (intermediate containers kept, as dockerd keeps them)
    image, logs = docker_client.images.build(  # type: ignore[attr-defined]
        path=str(context), tag="dockerpy:built", buildargs={"V": "5"}, labels={"via": "py"},
        rm=True)
    streams = "".join(entry.get("stream", "") for entry in logs)
    assert "Step 1/22 : FROM ${BASE} AS base" in streams
    assert image.labels["via"] == "py"
    assert image.tags == ["dockerpy:built:latest"] or "dockerpy:built" in image.tags[0]
    api = docker_client.api  # type: ignore[attr-defined]
    quiet = list(api.build(path=str(context), quiet=True, decode=True, rm=True,
                           buildargs={"V": "5"}, labels={"via": "py"}))
    lines = [entry["stream"] for entry in quiet if "stream" in entry]
    assert lines == [image.id + "\n"]


def test_a_no_change_rebuild_runs_nothing(daemon: Daemon, context: Path) -> None:
    first = built(daemon, context, "-t", "cached")
    again = built(daemon, context, "-t", "cached")
    assert ran(again) == 0
    assert again.count(" ---> Using cache") == 20  # every step after FROM
    assert re.findall(r"Successfully built (\w+)", first) == \
        re.findall(r"Successfully built (\w+)", again)


def test_changing_one_file_reruns_from_its_copy(daemon: Daemon, context: Path) -> None:
    built(daemon, context, "-t", "edit")
    (context / "sub" / "b").write_text("changed\n")
    out = built(daemon, context, "-t", "edit")
    steps = re.split(r"^Step \d+/\d+ : ", out, flags=re.M)[2:]  # after FROM
    cached = ["Using cache" in s for s in steps]
    first_miss = cached.index(False)
    assert steps[first_miss].startswith("COPY sub /s/")
    assert all(cached[:first_miss]) and not any(cached[first_miss:])
    assert ran(out) == 1
    assert daemon.ok("run", "--rm", "--entrypoint", "cat", "edit", "/s/b") == "changed\n"


def test_changing_a_build_arg_reruns_from_its_first_use(daemon: Daemon, context: Path) -> None:
    built(daemon, context, "-t", "args", "--build-arg", "V=10")
    out = built(daemon, context, "-t", "args", "--build-arg", "V=11")
    steps = re.split(r"^Step \d+/\d+ : ", out, flags=re.M)[2:]  # after FROM
    first_miss = ["Using cache" in s for s in steps].index(False)
    assert steps[first_miss].startswith("ENV A=b")  # ENV expands $V: its first use
    assert ran(out) == 1


def test_the_cache_survives_a_restart_and_prune_clears_it(daemon: Daemon,
                                                         context: Path) -> None:
    built(daemon, context, "-t", "restart", "--build-arg", "V=restart")
    daemon.stop()
    daemon.start()
    out = built(daemon, context, "-t", "restart", "--build-arg", "V=restart")
    assert ran(out) == 0
    pruned = daemon.ok("builder", "prune", "-f")
    assert "Total reclaimed space" in pruned
    out = built(daemon, context, "-t", "restart", "--build-arg", "V=restart")
    assert ran(out) == 1 and "Using cache" not in out
    daemon.ok("run", "--rm", "restart")


def test_no_cache(daemon: Daemon, context: Path) -> None:
    built(daemon, context, "-t", "nocache")
    out = built(daemon, context, "-t", "nocache", "--no-cache")
    assert "Using cache" not in out and ran(out) == 1


def test_a_failing_run_stops_with_its_code_and_leaves_nothing(daemon: Daemon,
                                                              tmp_path: Path) -> None:
    """With --force-rm (without it the failed step's container stays, as in docker: see
    test_side_by_side)."""
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN echo before > /f\nRUN echo output; exit 3\nRUN echo never\n")
    before = image_ids(daemon)
    result = build(daemon, tmp_path, "-t", "fails", "--force-rm")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "output" in result.stdout and "never" not in result.stdout
    assert "The command '/bin/sh -c echo output; exit 3' returned a non-zero code: 3" in \
        result.stderr
    assert image_ids(daemon) == before
    assert containers(daemon) == []
    assert daemon.docker("image", "inspect", "fails").returncode != 0


@pytest.mark.parametrize(("dockerfile", "message"), [
    ("FROM busybox\nRUN true\nFROB x\n", "dockerfile parse error line 3: unknown "
     "instruction: FROB"),
    ("FROM busybox\nRUN <<EOF\necho hi\n", "line 2: unterminated heredoc EOF"),
    ("FROM busybox AS a\nFROM busybox\nCOPY --from=missing /x /y\n",
     "COPY --from=missing: no stage or image named 'missing'"),
    ("FROM busybox\nCOPY ../outside /x\n", "forbidden path outside the build context: "
     "../outside"),
    ("FROM busybox\nCOPY nothing-here /x\n", "file not found in build context"),
    ("RUN true\n", "no build stage in current context"),
])
def test_bad_dockerfiles_fail_clearly_and_leave_nothing(daemon: Daemon, tmp_path: Path,
                                                        dockerfile: str, message: str) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    before = image_ids(daemon)
    result = build(daemon, tmp_path, "-t", "bad")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert image_ids(daemon) == before
    assert containers(daemon) == []


def test_target_builds_only_the_stages_it_needs(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS broken\nRUN exit 9\n"
        "FROM busybox AS lib\nRUN echo lib > /lib.txt\n"
        "FROM busybox AS app\nCOPY --from=lib /lib.txt /\nCMD [\"cat\", \"/lib.txt\"]\n"
        "FROM app AS later\nRUN exit 8\n")
    out = built(daemon, tmp_path, "-t", "targeted", "--target", "app")
    assert "exit 9" not in out and "exit 8" not in out
    assert daemon.ok("run", "--rm", "targeted") == "lib\n"
    result = build(daemon, tmp_path, "--target", "nope")
    assert "failed to reach build target nope" in result.stderr


def test_heredocs_chmod_and_a_dockerignored_context(daemon: Daemon, tmp_path: Path) -> None:
    context = make_context(tmp_path, "heredoc.Dockerfile")
    with open(context / "Dockerfile", "a") as f:
        f.write("COPY --chmod=0600 a.txt /secret\nCOPY . /ctx/\n")
    built(daemon, context, "-t", "heredoc", "--build-arg", "WHO=sampan")
    out = daemon.ok("run", "--rm", "heredoc")
    assert out == "hello sampan\nsecond line\nwelcome sampan\nnot expanded: $WHO\n"
    listing = daemon.ok("run", "--rm", "heredoc", "sh", "-c",
                        "stat -c %a /secret; cd /ctx && find . | sort")
    mode, *paths = listing.split()
    assert mode == "600"
    assert "./keep.log" in paths and "./sub/b" in paths and "./link" in paths
    assert not {"./debug.log", "./ignored", "./sub/x.tmp"} & set(paths)


def test_source_date_epoch_makes_reproducible_images(daemon: Daemon, context: Path) -> None:
    args = ("--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    built(daemon, context, "-t", "repro:a", *args)
    os.utime(context / "a.txt", (1_750_000_000, 1_750_000_000))  # later than the epoch
    built(daemon, context, "-t", "repro:b", *args)
    a, b = inspect(daemon, "repro:a"), inspect(daemon, "repro:b")
    assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    assert a["Id"] == b["Id"]
    assert a["Created"] == "2023-11-14T22:13:20Z"
    assert "were not consumed" not in built(daemon, context, *args)


def test_a_dockerfile_outside_the_context_and_iidfile(daemon: Daemon, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "data").write_text("data\n")
    elsewhere = tmp_path / "other.Dockerfile"
    elsewhere.write_text("FROM busybox\nCOPY data /data\nCMD [\"cat\", \"/data\"]\n")
    iid = tmp_path / "iid"
    built(daemon, context, "-f", str(elsewhere), "--iidfile", str(iid), "-q")
    image_id = iid.read_text().strip()
    assert image_id.startswith("sha256:")
    assert daemon.ok("run", "--rm", image_id) == "data\n"


def test_independent_stages_build_in_parallel_with_ordered_output(daemon: Daemon,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS one\nRUN sleep 3 && echo one > /one\n"
        "FROM busybox AS two\nRUN sleep 3 && echo two > /two\n"
        "FROM busybox\nCOPY --from=one /one /\nCOPY --from=two /two /\n"
        "CMD [\"cat\", \"/one\", \"/two\"]\n")
    started = time.monotonic()
    out = built(daemon, tmp_path, "-t", "parallel", "--no-cache")
    elapsed = time.monotonic() - started
    assert elapsed < 5.5, elapsed  # one after the other would take more than 6 s
    steps = [int(n) for n in re.findall(r"^Step (\d+)/8 :", out, re.M)]
    assert steps == list(range(1, 9))
    assert out.index("sleep 3 && echo one") < out.index("sleep 3 && echo two")
    assert daemon.ok("run", "--rm", "parallel") == "one\ntwo\n"


def test_a_dockerfile_on_stdin_without_context(daemon: Daemon) -> None:
    env = {**daemon.env, "DOCKER_BUILDKIT": "0"}
    result = subprocess.run(["docker", "build", "-t", "stdin", "-"], capture_output=True,
                            text=True, timeout=120, env=env,
                            input="FROM busybox\nRUN echo from-stdin > /f\nCMD cat /f\n")
    assert result.returncode == 0, result.stderr
    assert daemon.ok("run", "--rm", "stdin") == "from-stdin\n"


def test_add_downloads_a_url(daemon: Daemon, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("from the web\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.txt"
        (tmp_path / "ctx").mkdir()
        (tmp_path / "ctx" / "Dockerfile").write_text(f"FROM busybox\nADD {url} /dl/\n")
        built(daemon, tmp_path / "ctx", "-t", "download")
    finally:
        server.shutdown()
        server.server_close()
    out = daemon.ok("run", "--rm", "download", "sh", "-c",
                    "cat /dl/remote.txt; stat -c %a /dl/remote.txt")
    assert out == "from the web\n600\n"


def test_run_after_volume_leaves_no_volume_and_no_change_there(daemon: Daemon,
                                                               tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir /data && echo before > /data/kept\nVOLUME /data\n"
        "RUN echo after > /data/dropped && echo outside > /outside\n")
    volumes = daemon.ok("volume", "ls", "-q")
    built(daemon, tmp_path, "-t", "volumed")
    assert daemon.ok("volume", "ls", "-q") == volumes
    out = daemon.ok("run", "--rm", "volumed", "sh", "-c", "ls /data; cat /outside")
    assert out == "kept\noutside\n"


def test_rmi_of_a_base_the_cache_builds_on(daemon: Daemon, tmp_path: Path) -> None:
    """A stage's layers, kept by the build cache only, sit on the base image's: removing
    the base still works, the cache then misses, and `builder prune` takes the rest."""
    fixture = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "images"
    daemon.ok("load", "-i", str(fixture / "layers.docker.tar"))
    base = json.loads(daemon.ok("image", "inspect", "layers"))[0]["Id"]
    daemon.ok("tag", base, "rmi-base:1")
    (tmp_path / "Dockerfile").write_text(
        "FROM rmi-base:1 AS stage\nUSER root\nRUN echo made > /made\n"
        "FROM rmi-base:1\nCOPY --from=stage /made /made\n")
    built(daemon, tmp_path, "-t", "on-base:1")
    daemon.ok("rmi", "on-base:1")
    removed = daemon.docker("rmi", "rmi-base:1", "layers")
    assert removed.returncode == 0, removed.stderr
    assert base not in image_ids(daemon)
    daemon.ok("load", "-i", str(fixture / "layers.docker.tar"))
    daemon.ok("tag", base, "rmi-base:1")
    again = built(daemon, tmp_path, "-t", "on-base:1")
    assert ran(again) == 1  # the stage's cached layer lost its blobs with the base: a miss
    assert daemon.ok("run", "--rm", "on-base:1", "cat", "/made").strip() == "made"
    daemon.ok("rmi", "on-base:1", "rmi-base:1", "layers")
    daemon.ok("builder", "prune", "-f")
