"""The --format template evaluator against Go text/template's rules and the examples in
docker's formatting and inspect documentation."""

from __future__ import annotations

import io

import pytest

from sampan.cli.client.gotemplate import Template, TemplateError, go_str
from sampan.cli.client.output import render, tabwrite

CONTAINER = {
    "Id": "4fa6e0f0c678",
    "Name": "/Web-App",
    "Args": ["-g", "daemon off;"],
    "LogPath": "/var/lib/docker/containers/4fa6/4fa6-json.log",
    "State": {"Status": "running", "Running": True, "ExitCode": 0, "Pid": 1234},
    "Config": {"Image": "nginx:latest", "Env": ["PATH=/usr/bin", "A=1"],
               "Labels": {"b.tier": "web", "a": "1"}, "Cmd": None, "Tty": False},
    "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/data", "RW": True}],
    "NetworkSettings": {
        "Networks": {"bridge": {"IPAddress": "172.17.0.2"},
                     "other": {"IPAddress": "10.0.0.5"}},
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                  "443/tcp": None}},
    "Ratio": 1.5, "Big": 1e21, "Count": 3,
}


def run(src: str, data: object = CONTAINER) -> str:
    return Template(src).render(data)


@pytest.mark.parametrize(("src", "expected"), [
    # docker inspect's documented examples
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "172.17.0.210.0.0.5"),
    ("{{.LogPath}}", "/var/lib/docker/containers/4fa6/4fa6-json.log"),
    ("{{.Config.Image}}", "nginx:latest"),
    ("{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> {{if $conf}}"
     "{{(index $conf 0).HostPort}}{{end}} {{end}}", "443/tcp ->  80/tcp -> 8080 "),
    ('{{json .Config.Labels}}', '{"b.tier":"web","a":"1"}'),
    ("{{json .Mounts}}",
     '[{"Type":"volume","Name":"data","Destination":"/data","RW":true}]'),
    # docker's formatting page: join, lower, split, title, upper, println
    ('{{join .Args " , "}}', "-g , daemon off;"),
    ("{{lower .Name}}", "/web-app"),
    ('{{split .Config.Image ":"}}', "[nginx latest]"),
    ("{{title .State.Status}}", "Running"),
    ("{{upper .Name}}", "/WEB-APP"),
    ("{{range .NetworkSettings.Networks}}{{println .IPAddress}}{{end}}",
     "172.17.0.2\n10.0.0.5\n"),
    ("{{.Name | upper | lower}}", "/web-app"),
    ('{{index .Config.Labels "b.tier"}}', "web"),
    ("{{index .Config.Env 1}}", "A=1"),
    ('{{pad .State.Status 1 2}}|', " running  |"),
    ("{{truncate .Id 4}}", "4fa6"),
    # Go's printing of values
    ("{{.Config.Labels}}", "map[a:1 b.tier:web]"),
    ("{{.Config.Env}}", "[PATH=/usr/bin A=1]"),
    ("{{.Config.Cmd}}", "<nil>"),
    ("{{.Config.Missing}}", "<no value>"),
    ("{{.State.Running}} {{.Config.Tty}}", "true false"),
    ("{{.Ratio}} {{.Count}} {{.Big}}", "1.5 3 1e+21"),
    ("{{.}}", go_str(CONTAINER)),
    # control structures, variables, trimming, comments
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .Config.Tty}}tty{{else if .State.Running}}running{{else}}no{{end}}", "running"),
    ("{{with .State}}{{.Status}}/{{.Pid}}{{end}}", "running/1234"),
    ("{{with .Config.Cmd}}cmd{{else}}no cmd{{end}}", "no cmd"),
    ("{{range .Config.Cmd}}x{{else}}empty{{end}}", "empty"),
    ("{{range $i, $e := .Args}}{{$i}}={{$e}};{{end}}", "0=-g;1=daemon off;;"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}} {{end}}", "a:1 b.tier:web "),
    ("{{$n := .Name}}{{range .Args}}{{$n}}{{end}}", "/Web-App/Web-App"),
    ("{{range .Args}}{{$.Id}}{{end}}", "4fa6e0f0c6784fa6e0f0c678"),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
    ("a  {{- .Count -}}  b", "a3b"),
    ("x{{/* a comment */}}y", "xy"),
    ("{{if eq .State.Status \"running\" \"paused\"}}ok{{end}}", "ok"),
    ("{{if ne .Count 3}}a{{else}}b{{end}}", "b"),
    ("{{if and (gt .Count 2) (lt .Count 4)}}in{{end}}", "in"),
    ("{{or .Config.Cmd \"default\"}}", "default"),
    ("{{and .Count .Name}}", "/Web-App"),
    ("{{not .State.Running}}", "false"),
    ("{{len .Args}} {{len .Config.Labels}}", "2 2"),
    ('{{printf "%s has %d args (%v)" .Name (len .Args) .State.Running}}',
     "/Web-App has 2 args (true)"),
    ('{{printf "%q" .State.Status}}', '"running"'),
    ('{{print "a" "b" 1 2}}', "ab1 2"),
    ("{{slice .Id 0 4}}", "4fa6"),
    ("{{`raw {{ text`}}", "raw {{ text"),
    ('{{"quoted \\"}}\\" inside"}}', 'quoted "}}" inside'),
])
def test_expressions(src: str, expected: str) -> None:
    assert run(src) == expected


@pytest.mark.parametrize("src", ["{{.Name", "{{if .Name}}x", "{{end}}", "{{nosuchfunc .Id}}",
                                 "{{index .Args 5}}", "{{range 3.5}}{{end}}"])
def test_errors(src: str) -> None:
    with pytest.raises(TemplateError):
        run(src)


class Row:
    """A placeholder object as ps/images rows are: attributes and a method with args."""

    def __init__(self, name: str, labels: dict[str, str]) -> None:
        self.Names, self.labels = name, labels

    def Label(self, key: str) -> str:
        return self.labels.get(key, "")


def test_methods_and_missing_fields() -> None:
    row = Row("web", {"com.example.tier": "front"})
    assert Template('{{.Names}}:{{.Label "com.example.tier"}}').render(row) == "web:front"
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        Template("{{.Nope}}").render(row)


def test_table_header_and_layout() -> None:
    """`table` formats: a header row from the placeholders, docker's tabwriter widths
    (column = widest cell + 3, at least 10; the last column unpadded)."""
    out = io.StringIO()
    rows = [Row("a-very-long-container-name", {"com.example.tier": "front"}),
            Row("b", {})]
    render('table {{.Names}}\\t{{.Label "com.example.tier"}}\\t{{upper .Names}}', rows,
           {"Names": "NAMES"}, out=out)
    assert out.getvalue() == (
        "NAMES                        tier      NAMES\n"
        "a-very-long-container-name   front     A-VERY-LONG-CONTAINER-NAME\n"
        "b                                      B\n")


def test_plain_format_and_json_shorthand() -> None:
    out = io.StringIO()
    render("{{.Names}}\\t{{.Label \"x\"}}", [Row("one", {"x": "1"})], out=out)
    assert out.getvalue() == "one\t1\n"
    out = io.StringIO()
    render("json", [{"b": 1, "a": "<x>"}], out=out)
    assert out.getvalue() == '{"b":1,"a":"<x>"}\n'


def test_tabwrite_min_width() -> None:
    assert tabwrite(["a\tb", "ccc\td"]) == "a         b\nccc       d"
    assert tabwrite(["UID\tPID", "root\t1"], minwidth=20) == \
        "UID                 PID\nroot                1"
