"""Issue 4, check 1, with `sampan` as the client: the scripted session against sampand,
and the same commands' output compared with the real docker CLI's."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from ..engine.conftest import Daemon
from .conftest import SAMPAN, Cli
from .ptyrun import Pty


def go_map_order(text: str) -> list[str]:
    """Lines in an order of their own: the docker CLI prints some things (an image's rows
    by repository, info's runtimes) by iterating Go maps, whose order is random."""
    return sorted(" ".join(sorted(ln.split())) if ln.startswith(" Runtimes:") else ln
                  for ln in text.splitlines())


def same_as_docker(sampan: Cli, daemon: Daemon, *args: str, unordered: bool = False) -> str:
    """`sampan args` prints what `docker args` prints (retried once: relative times may
    cross a second between the two); ``unordered`` where docker's order is a Go map's."""
    for _ in range(2):
        ours = sampan.run(*args)
        theirs = daemon.docker(*args)
        same = go_map_order(ours.stdout) == go_map_order(theirs.stdout) if unordered \
            else ours.stdout == theirs.stdout
        if same and ours.returncode == theirs.returncode:
            return ours.stdout
        time.sleep(0.3)
    message = f"{args}\nsampan:\n{ours.stdout}\ndocker:\n{theirs.stdout}"
    if unordered:
        assert go_map_order(ours.stdout) == go_map_order(theirs.stdout), message
    else:
        assert ours.stdout == theirs.stdout, message
    assert ours.returncode == theirs.returncode, (args, ours.stderr, theirs.stderr)
    return ours.stdout


def test_version_and_info(sampan: Cli, cli_daemon: Daemon) -> None:
    out = sampan.ok("version")
    assert out.startswith("Client: sampan\n Version:           0.1.0\n")
    assert "\nServer: sampan\n Engine:\n  Version:          0.1.0\n" in out
    assert "  API version:      1.45 (minimum version 1.24)\n" in out
    assert sampan.ok("version", "--format", "{{.Server.Version}} {{.Client.APIVersion}}") \
        == "0.1.0 1.45\n"
    ours = sampan.run("info")
    theirs = cli_daemon.docker("info")
    assert ours.returncode == 0
    # only the client's own version line differs
    assert go_map_order("\n".join(ln for ln in ours.stdout.splitlines()
                                   if ln != " Version:    0.1.0")) == \
        go_map_order("\n".join(ln for ln in theirs.stdout.splitlines()
                               if not ln.startswith(" Version:    2")))
    assert ours.stderr == theirs.stderr  # the daemon's warnings
    assert sampan.ok("info", "--format", "{{.Containers}} {{json .Driver}}").endswith('"\n')


def test_images_and_history_as_docker(sampan: Cli, cli_daemon: Daemon) -> None:
    for args in (["images"], ["images", "--digests"], ["images", "-q"],
                 ["images", "--no-trunc"], ["images", "--format", "json"],
                 ["images", "--format", "table {{.Repository}}\\t{{.Size}}"],
                 ["image", "ls"], ["history", "busybox"], ["history", "--no-trunc", "busybox"],
                 ["history", "--format", "json", "busybox"], ["inspect", "busybox"],
                 ["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", "busybox"]):
        same_as_docker(sampan, cli_daemon, *args, unordered=args[0] in ("images", "image"))
    assert "busybox" in sampan.ok("images", "--format", "{{.Repository}}:{{.Tag}}")


def test_run_rm_output_and_exit_code(sampan: Cli) -> None:
    result = sampan.run("run", "--rm", "--name", "rm-once", "busybox", "sh", "-c",
                        "echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 3)
    assert "rm-once" not in sampan.ok("ps", "-a", "--format", "{{.Names}}")
    assert sampan.run("run", "--rm", "busybox", "true").returncode == 0
    piped = sampan.run("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; exit 0",
                       input="shout\n")
    assert piped.stdout == "SHOUT\n"


def test_exit_codes(sampan: Cli) -> None:
    unknown_flag = sampan.run("run", "--no-such-flag", "busybox")
    assert unknown_flag.returncode == 125
    assert "unknown flag: --no-such-flag" in unknown_flag.stderr
    not_found = sampan.run("run", "--rm", "busybox", "no-such-command")
    assert not_found.returncode == 127
    assert "executable file not found" in not_found.stderr
    conflict = sampan.run("run", "--rm", "--restart", "always", "busybox", "true")
    assert conflict.returncode == 125
    sampan.ok("create", "--name", "taken", "busybox", "true")
    taken = sampan.run("run", "--name", "taken", "busybox", "true")
    assert taken.returncode == 125 and "is already in use" in taken.stderr
    assert sampan.run("rm", "no-such-container").returncode == 1
    sampan.ok("rm", "taken")
    assert sampan.run("frobnicate").returncode == 1
    assert sampan.run("ps", "--bogus").returncode == 125


def test_detached_container_lifecycle(sampan: Cli, cli_daemon: Daemon) -> None:
    cid = sampan.ok("run", "-d", "--name", "life", "-e", "GREETING=hello", "-l", "tier=web",
                    "busybox", "sh", "-c",
                    "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done").strip()
    assert len(cid) == 64
    for args in (["ps"], ["ps", "-a"], ["ps", "--no-trunc"], ["ps", "-q"], ["ps", "-s"],
                 ["ps", "--format", "json"], ["ps", "-a", "--filter", "name=life"],
                 ["ps", "--format", "table {{.Names}}\\t{{.Label \"tier\"}}\\t{{.State}}"],
                 ["container", "ls", "-n", "1"], ["inspect", "life"],
                 ["inspect", "--format", "{{json .Config.Env}}", "life"]):
        same_as_docker(sampan, cli_daemon, *args)
    assert sampan.ok("ps", "--format", "{{.Names}} {{.State}}") .startswith("life running")
    assert sampan.ok("inspect", "-f", "{{.State.Status}} {{index .Config.Labels \"tier\"}}",
                     "life") == "running web\n"
    # logs -f follows what the container writes
    follow = subprocess.Popen([SAMPAN, "logs", "-f", "--tail", "1", "life"],
                              stdout=subprocess.PIPE, env=sampan.env)
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline()
        later = follow.stdout.readline()
        assert first.startswith(b"line") and later.startswith(b"line")
        assert int(later[4:]) == int(first[4:]) + 1
    finally:
        follow.terminate()
        follow.wait(10)
    assert sampan.ok("logs", "--tail", "2", "life").count("\n") == 2
    # exec: output, environment, exit code
    result = sampan.run("exec", "-e", "EXTRA=1", "life", "sh", "-c",
                        "echo $GREETING $EXTRA; exit 4")
    assert (result.stdout, result.returncode) == ("hello 1\n", 4)
    assert sampan.ok("exec", "-w", "/etc", "-u", "nobody", "life", "sh", "-c",
                     "pwd; id -un") == "/etc\nnobody\n"
    assert sampan.ok("stop", "-t", "1", "life") == "life\n"
    assert sampan.ok("inspect", "-f", "{{.State.Status}}", "life") == "exited\n"
    assert sampan.ok("restart", "-t", "1", "life") == "life\n"
    assert sampan.ok("inspect", "-f", "{{.State.Running}}", "life") == "true\n"
    assert sampan.ok("kill", "life") == "life\n"
    assert sampan.ok("wait", "life") == "137\n"
    assert sampan.ok("rename", "life", "life2") == ""
    assert sampan.ok("rm", "life2") == "life2\n"
    gone = sampan.run("inspect", "life2")
    assert gone.returncode == 1 and "No such object: life2" in gone.stderr


def test_exec_it_through_a_pty(sampan: Cli, cli_daemon: Daemon) -> None:
    sampan.ok("run", "-d", "--name", "ptyexec", "busybox", "sleep", "300")
    # CPU time columns move: the header and the commands are docker's
    ours = sampan.ok("top", "ptyexec").splitlines()
    theirs = cli_daemon.ok("top", "ptyexec").splitlines()
    assert ours[0] == theirs[0] and ours[0].startswith("UID                 PID")
    assert [line.split()[-2:] for line in ours[1:]] == \
        [line.split()[-2:] for line in theirs[1:]] == [["sleep", "300"]]
    same_as_docker(sampan, cli_daemon, "top", "ptyexec", "-o", "pid,comm")
    pty = Pty([SAMPAN, "exec", "-it", "ptyexec", "sh"], sampan.env, rows=33, cols=101)
    try:
        pty.expect(b"# ")
        pty.send(b"stty size; tty; echo $((6*7))\r")
        pty.expect(b"42\r\n")
        assert b"33 101\r\n" in pty.output and b"/dev/pts/" in pty.output
        pty.resize(40, 120)
        time.sleep(0.5)
        pty.send(b"stty size; exit 7\r")
        assert pty.wait() == 7
        assert b"40 120" in pty.output
    finally:
        pty.close()
        sampan.run("rm", "-f", "ptyexec")


def test_run_it_through_a_pty(sampan: Cli) -> None:
    pty = Pty([SAMPAN, "run", "-it", "--rm", "busybox", "sh"], sampan.env, rows=20, cols=70)
    try:
        pty.expect(b"# ")
        pty.send(b"stty size; echo typed-$((1+1))\r")
        pty.expect(b"typed-2")
        assert b"20 70" in pty.output
        pty.send(b"exit 9\r")
        assert pty.wait() == 9
    finally:
        pty.close()


def test_exec_needs_a_terminal_for_it(sampan: Cli) -> None:
    sampan.ok("run", "-d", "--name", "notty", "busybox", "sleep", "300")
    try:
        result = sampan.run("exec", "-it", "notty", "sh", input="")
        assert result.returncode == 1 and "the input device is not a TTY" in result.stderr
    finally:
        sampan.ok("rm", "-f", "notty")


def test_attach(sampan: Cli) -> None:
    sampan.ok("run", "-d", "-i", "--name", "att", "busybox", "sh", "-c",
              "read x; echo got $x; echo on-err >&2; exit 4")
    result = sampan.run("attach", "att", input="word\n", timeout=30)
    assert (result.stdout, result.stderr, result.returncode) == ("got word\n", "on-err\n", 4)
    sampan.ok("rm", "att")
    sampan.ok("run", "-d", "--name", "att2", "busybox", "sh", "-c",
              "sleep 1; echo late; exit 2")
    result = sampan.run("attach", "att2", timeout=30)
    assert (result.stdout, result.returncode) == ("late\n", 2)
    stopped = sampan.run("attach", "att2")
    assert stopped.returncode == 1 and "start it first" in stopped.stderr
    sampan.ok("rm", "att2")


def test_start_attach_and_create(sampan: Cli) -> None:
    cid = sampan.ok("create", "--name", "later", "busybox", "sh", "-c", "echo ran; exit 5")
    assert len(cid.strip()) == 64
    result = sampan.run("start", "-a", "later")
    assert (result.stdout, result.returncode) == ("ran\n", 5)
    assert sampan.ok("start", "later") == "later\n"
    assert sampan.ok("wait", "later") == "5\n"
    assert sampan.ok("container", "rm", "later") == "later\n"


def test_save_load_tag_rmi(sampan: Cli, cli_daemon: Daemon, tmp_path: object) -> None:
    archive = os.path.join(str(tmp_path), "bb.tar")
    assert sampan.ok("tag", "busybox", "sampan-cli/copy:1") == ""
    assert sampan.ok("save", "-o", archive, "sampan-cli/copy:1") == ""
    assert os.path.getsize(archive) > 1 << 20
    assert sampan.ok("rmi", "sampan-cli/copy:1") == "Untagged: sampan-cli/copy:1\n"
    assert sampan.run("rmi", "sampan-cli/copy:1").returncode == 1
    assert sampan.ok("load", "-i", archive) == "Loaded image: sampan-cli/copy:1\n"
    assert "sampan-cli/copy" in sampan.ok("images")
    with open(archive, "rb") as f:
        piped = subprocess.run([SAMPAN, "load"], stdin=f, capture_output=True, env=sampan.env)
    assert piped.stdout == b"Loaded image: sampan-cli/copy:1\n"
    saved = subprocess.run([SAMPAN, "save", "sampan-cli/copy:1"], capture_output=True,
                           env=sampan.env)
    assert saved.returncode == 0 and saved.stdout[257:262] == b"ustar"
    assert sampan.ok("image", "rm", "sampan-cli/copy:1") == "Untagged: sampan-cli/copy:1\n"


def test_import_and_diff(sampan: Cli, cli_daemon: Daemon, tmp_path: object) -> None:
    sampan.ok("run", "--name", "changer", "busybox", "sh", "-c",
              "echo x > /new-file; rm /bin/ls")
    same_as_docker(sampan, cli_daemon, "diff", "changer")
    assert "A /new-file" in sampan.ok("diff", "changer")
    sampan.ok("rm", "changer")
    root = os.path.join(str(tmp_path), "tree")
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "marker"), "w") as f:
        f.write("imported\n")
    tarball = os.path.join(str(tmp_path), "tree.tar")
    subprocess.run(["tar", "-C", root, "-cf", tarball, "."], check=True)
    out = sampan.ok("import", "-c", "LABEL via=sampan", tarball, "sampan-cli/imported:1")
    assert out.startswith("sha256:")
    assert sampan.ok("image", "inspect", "-f", "{{.Config.Labels.via}}",
                     "sampan-cli/imported:1") == "sampan\n"
    sampan.ok("rmi", "sampan-cli/imported:1")


def test_events(sampan: Cli, cli_daemon: Daemon) -> None:
    sampan.ok("run", "--rm", "--name", "eventful", "busybox", "true")
    until = str(int(time.time()) + 1)
    time.sleep(1.2)
    args = ["events", "--since", "60s", "--until", until, "--filter", "container=eventful"]
    ours = sampan.run(*args)
    theirs = cli_daemon.docker(*args)
    assert ours.returncode == 0 and ours.stdout == theirs.stdout
    assert " container start " in ours.stdout and " container destroy " in ours.stdout
    as_json = sampan.ok("events", "--since", "60s", "--until", until, "--format",
                        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", "--filter",
                        "container=eventful")
    assert "container die eventful\n" in as_json


@pytest.mark.parametrize("args", [["container", "ls", "-a"], ["image", "ls"],
                                  ["system", "info"], ["container", "ps", "-q"]])
def test_grouped_forms(sampan: Cli, args: list[str]) -> None:
    assert sampan.run(*args).returncode == 0


def test_help_and_usage(sampan: Cli) -> None:
    out = sampan.ok("run", "--help")
    assert "Usage:  sampan run [OPTIONS] IMAGE [COMMAND] [ARG...]" in out
    assert "--publish" in out
    assert sampan.ok("--help").startswith("Usage:  sampan [OPTIONS] COMMAND")
    bad = sampan.run("rename", "only-one")
    assert bad.returncode == 125 and "requires exactly 2 arguments" in bad.stderr


def test_prune(sampan: Cli) -> None:
    sampan.ok("create", "--name", "prunable", "busybox", "true")
    out = sampan.ok("container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and out.endswith(
        "Total reclaimed space: 0B\n")
    declined = sampan.run("container", "prune", input="n\n")
    assert "Are you sure you want to continue? [y/N]" in declined.stdout
    assert "Total reclaimed space: 0B" in sampan.ok("image", "prune", "-f")


def test_volumes(sampan: Cli, cli_daemon: Daemon) -> None:
    assert sampan.ok("volume", "create", "--label", "k=v", "cli-vol") == "cli-vol\n"
    for args in (["volume", "ls"], ["volume", "ls", "-q"], ["volume", "inspect", "cli-vol"],
                 ["volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Label \"k\"}}"]):
        same_as_docker(sampan, cli_daemon, *args)
    sampan.ok("run", "--rm", "-v", "cli-vol:/data", "busybox", "sh", "-c",
              "echo kept > /data/f")
    assert sampan.ok("run", "--rm", "--mount", "type=volume,src=cli-vol,dst=/v,readonly",
                     "busybox", "cat", "/v/f") == "kept\n"
    assert sampan.ok("volume", "rm", "cli-vol") == "cli-vol\n"
    assert sampan.run("volume", "rm", "cli-vol").returncode == 1
    assert "Total reclaimed space" in sampan.ok("volume", "prune", "-f")


def test_signals_reach_the_container(sampan: Cli) -> None:
    """--sig-proxy (the default without -t): a SIGINT to `sampan run` is the container's."""
    proc = subprocess.Popen(
        [SAMPAN, "run", "--rm", "busybox", "sh", "-c",
         'trap "echo got INT; exit 3" INT; echo ready; while true; do sleep 0.1; done'],
        stdout=subprocess.PIPE, text=True, env=sampan.env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(2)
        assert proc.stdout.readline() == "got INT\n"
        assert proc.wait(30) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_networks_and_ports(sampan: Cli, cli_daemon: Daemon) -> None:
    net_id = sampan.ok("network", "create", "--subnet", "10.231.77.0/24", "--label", "k=v",
                       "cli-net").strip()
    assert len(net_id) == 64
    try:
        for args in (["network", "ls"], ["network", "ls", "-q"], ["network", "inspect",
                                                                   "cli-net"],
                     ["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Label \"k\"}}"]):
            same_as_docker(sampan, cli_daemon, *args)
        sampan.ok("run", "-d", "--name", "published", "--network", "cli-net", "-p",
                  "127.0.0.1::80", "-p", "8099:81/udp", "busybox", "sleep", "300")
        for args in (["ps"], ["port", "published"], ["port", "published", "80"],
                     ["ps", "--format", "{{.Ports}} {{.Networks}}"]):
            same_as_docker(sampan, cli_daemon, *args)
        assert "->81/udp" in sampan.ok("ps", "--format", "{{.Ports}}")
        assert sampan.ok("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}"
                         "{{$k}} {{$v.IPAddress}}{{end}}", "published").startswith(
            "cli-net 10.231.77.")
        sampan.ok("network", "create", "--subnet", "10.231.78.0/24", "cli-net2")
        # (a container with published ports cannot join a second network: sampand
        # answers "Address already in use"; one without them can)
        sampan.ok("run", "-d", "--name", "joiner", "--network", "cli-net", "busybox",
                  "sleep", "300")
        assert sampan.ok("network", "connect", "--alias", "pub", "cli-net2", "joiner") == ""
        aliases = sampan.ok("inspect", "-f", '{{(index .NetworkSettings.Networks '
                            '"cli-net2").Aliases}}', "joiner")
        assert "pub" in aliases.strip("[]\n").split()
        assert sampan.ok("ps", "-f", "name=joiner", "--format", "{{.Networks}}") == \
            "cli-net,cli-net2\n"
        assert sampan.ok("network", "disconnect", "cli-net2", "joiner") == ""
        assert sampan.ok("ps", "-f", "name=joiner", "--format", "{{.Networks}}") == \
            "cli-net\n"
        sampan.ok("rm", "-f", "published")
    finally:
        sampan.run("rm", "-f", "published", "joiner")
        sampan.run("network", "rm", "cli-net2")
        assert sampan.ok("network", "rm", "cli-net") == "cli-net\n"
    assert sampan.run("network", "rm", "cli-net").returncode == 1


def test_cp_commit_export_df(sampan: Cli, cli_daemon: Daemon, tmp_path: Path) -> None:
    sampan.ok("run", "-d", "--name", "files", "busybox", "sleep", "300")
    try:
        (tmp_path / "in.txt").write_text("into the container\n")
        assert sampan.run("cp", str(tmp_path / "in.txt"), "files:/tmp/").returncode == 0
        assert sampan.ok("exec", "files", "cat", "/tmp/in.txt") == "into the container\n"
        sampan.ok("cp", "files:/etc/hostname", str(tmp_path / "hostname"))
        assert (tmp_path / "hostname").read_text() == \
            sampan.ok("inspect", "-f", "{{slice .Id 0 12}}", "files")
        image = sampan.ok("commit", "-c", "ENV COMMITTED=1", "files", "sampan-cli/c:1")
        assert image.startswith("sha256:")
        assert sampan.ok("run", "--rm", "sampan-cli/c:1", "sh", "-c",
                         "cat /tmp/in.txt; echo $COMMITTED") == "into the container\n1\n"
        exported = subprocess.run([SAMPAN, "export", "files"], capture_output=True,
                                  env=sampan.env, timeout=120)
        names = tarfile.open(fileobj=io.BytesIO(exported.stdout)).getnames()
        assert "tmp/in.txt" in [n.lstrip("./") for n in names]
        same_as_docker(sampan, cli_daemon, "system", "df")
        same_as_docker(sampan, cli_daemon, "system", "df", "-v")
    finally:
        sampan.run("rm", "-f", "files")
        sampan.run("rmi", "sampan-cli/c:1")


def test_detach_keys(sampan: Cli) -> None:
    """ctrl-p ctrl-q leaves `run -it` and the container runs on (the daemon reads the
    keys; the CLI passes --detach-keys through and tells a detach from an exit)."""
    pty = Pty([SAMPAN, "run", "-it", "--name", "detached", "busybox", "sh"], sampan.env)
    try:
        pty.expect(b"# ")
        pty.send(b"\x10\x11")
        assert pty.wait() == 0
    finally:
        pty.close()
    try:
        assert sampan.ok("inspect", "-f", "{{.State.Running}}", "detached") == "true\n"
    finally:
        sampan.run("rm", "-f", "detached")


def test_stats(sampan: Cli, cli_daemon: Daemon) -> None:
    sampan.ok("run", "-d", "--name", "measured", "busybox", "sleep", "300")
    try:
        ours = sampan.ok("stats", "--no-stream", "measured").splitlines()
        theirs = cli_daemon.ok("stats", "--no-stream", "measured").splitlines()
        # widths follow the values, which move (network counters): compare the words
        assert ours[0].split() == theirs[0].split()
        assert len(ours[1].split()) == len(theirs[1].split()), (ours, theirs)
        assert ours[1].split()[1] == "measured" and ours[1].split()[-1] == "1"
        assert sampan.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}",
                         "measured") == "measured 1\n"
    finally:
        sampan.run("rm", "-f", "measured")
