"""The small stand-ins the runtime's start path uses instead of dataclasses, json and
argparse: they must behave as what they replace."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sampan.cli.options import Arg, Command, Flag, parse
from sampan.oci import jsonio
from sampan.oci.record import field, fields, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    label: str | None = field(default=None, metadata={"json": "Label"})


def test_record_init_defaults_eq_repr_replace() -> None:
    p = Point(1, tags=["a"])
    assert (p.x, p.y, p.tags, p.label) == (1, 0, ["a"], None)
    assert Point(1).tags is not Point(1).tags  # a fresh list per instance
    assert p == Point(1, 0, ["a"]) and p != Point(2)
    assert repr(p) == "Point(x=1, y=0, tags=['a'], label=None)"
    assert replace(p, y=5) == Point(1, 5, ["a"])
    assert [(f.name, f.type, f.required) for f in fields(Point)] == [
        ("x", int, True), ("y", int, False), ("tags", list[str], False),
        ("label", str | None, False)]
    for bad in (lambda: Point(), lambda: Point(1, x=2), lambda: Point(1, z=3)):
        with pytest.raises(TypeError):
            bad()


@pytest.mark.parametrize("doc", [{}, [], {"a": [1, 2.5, None, True, False, "é\n\"x\""]},
                                 {"nested": {"k": {"k2": [{}]}}, "e": [], "f": [[], {}]},
                                 "text", 0, -1.5e300])
def test_jsonio_agrees_with_json(doc: object) -> None:
    assert jsonio.loads(jsonio.dumps(doc)) == doc
    assert jsonio.loads(json.dumps(doc, indent=2)) == doc
    assert json.loads(jsonio.dumps(doc)) == doc
    for indent in (2, 4, "\t"):  # laid out as json lays it out (runc's `state`, `spec`)
        assert jsonio.dumps(doc, indent=indent) == json.dumps(doc, indent=indent)


@pytest.mark.parametrize("text", ["", "{", "{}x", "[1,]", "{'a': 1}", "nul"])
def test_jsonio_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsonio.loads(text)


COMMANDS = {"exec": Command("run", [Flag("--env", "-e", kind="append"),
                                    Flag("--tty", "-t", kind="bool"),
                                    Flag("--n", kind="int", default=0)],
                            [Arg("id"), Arg("argv", "...")]),
            "rm": Command("remove", [Flag("--force", "-f", kind="bool")], [Arg("ids", "+")])}
GLOBAL = [Flag("--root", default="/r")]


def test_options_parse_like_argparse() -> None:
    args = parse("p", "d", GLOBAL, COMMANDS,
                 ["--root=/x", "exec", "-e", "A=1", "--env", "B=2", "-t", "--n", "3", "c1",
                  "sh", "-c", "echo --tty"])
    assert (args.root, args.command, args.env, args.tty, args.n, args.id, args.argv) == (
        "/x", "exec", ["A=1", "B=2"], True, 3, "c1", ["sh", "-c", "echo --tty"])
    args = parse("p", "d", GLOBAL, COMMANDS, ["rm", "a", "b", "--force"])
    assert (args.ids, args.force, args.root) == (["a", "b"], True, "/r")


def test_options_leave_help_and_errors_to_argparse() -> None:
    probe = ("import sys; from tests.oci.test_lean_parts import *; "
             "parse('p', 'd', GLOBAL, COMMANDS, sys.argv[1:])")
    bad = subprocess.run([sys.executable, "-c", probe, "exec", "--n", "x", "c1"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid int value: 'x'" in bad.stderr
    missing = subprocess.run([sys.executable, "-c", probe, "rm"], capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "required: ids" in missing.stderr
    helped = subprocess.run([sys.executable, "-c", probe, "exec", "--help"],
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "--tty" in helped.stdout


FULL_SPEC = {
    "ociVersion": "1.2.0", "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 8, "soft": 8}]},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "hooks": {"prestart": [{"path": "/bin/true"}]},
    "linux": {"namespaces": [{"type": "pid"}, {"type": "user"}],
              "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
              "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
              "resources": {"memory": {"limit": 1 << 20}, "pids": {"limit": 5},
                            "devices": [{"allow": False, "access": "rwm"}],
                            "blockIO": {"weightDevice": [{"major": 8, "minor": 0,
                                                          "weight": 10}]}},
              "seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                          "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                        "args": [{"index": 0, "value": 1,
                                                  "op": "SCMP_CMP_EQ"}]}]}},
}


def test_prepare_resolves_every_record_a_spec_decode_needs() -> None:
    # in a fresh interpreter: nothing resolved before prepare()
    probe = ("import json, sys; from sampan.oci import decode; "
             "from sampan.oci.spec import Spec, parse_spec; "
             "decode.prepare(Spec); before = set(decode._fields_cache); "
             "parse_spec(json.load(sys.stdin)); "
             "print(len(before), len(set(decode._fields_cache) - before))")
    out = subprocess.run([sys.executable, "-c", probe], input=json.dumps(FULL_SPEC),
                         capture_output=True, text=True, check=True).stdout.split()
    prepared, resolved_later = int(out[0]), int(out[1])
    assert prepared >= 20 and resolved_later == 0


@pytest.mark.parametrize(("patch", "error"), [
    ({"process": {"cwd": "/", "args": ["sh"], "user": {"uid": "0", "gid": 0}}},
     "process.user.uid: expected integer, got string"),
    ({"mounts": [{"destination": "/a"}, {"destination": 5}]},
     "mounts[1].destination: expected string, got integer"),
    ({"linux": {"sysctl": {"net.ipv4.ip_forward": 1}}},
     "linux.sysctl.net.ipv4.ip_forward: expected string, got integer"),
    ({"linux": {"resources": {"devices": [{"access": "rwm"}]}}},
     "linux.resources.devices[0].allow: required field is missing"),
    ({"linux": {"resources": {"memory": []}}},
     "linux.resources.memory: expected object, got array"),
])
def test_decode_errors_name_the_field(patch: dict[str, object], error: str) -> None:
    from sampan.oci.spec import ConfigError, parse_spec

    with pytest.raises(ConfigError) as caught:
        parse_spec({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, **patch})
    assert str(caught.value) == error
    parse_spec(FULL_SPEC)  # and a valid document still decodes after any of them
