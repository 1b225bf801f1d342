"""logs and events: the streaming readers."""

from __future__ import annotations

import os
import sys

from ..api import filters_param
from ..flags import BOOL, LIST, STR, Opt, UsageError
from . import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..main import Cli


def timestamp(value: str | None, now: float, flag: str) -> str | None:
    """docker's GetTimestamp: a Go duration is that long ago; RFC 3339 times and dates
    become Unix seconds; Unix seconds pass through."""
    if not value:
        return None
    from .... import humanize
    from .. import runopts

    if value.replace(".", "", 1).isdigit():
        return value
    if value[-1].isalpha() and not value[0].isalpha() and "-" not in value:
        try:
            return f"{now - runopts.duration_ns(value, flag) / 1e9:.9f}"
        except UsageError:
            pass
    text = value
    if len(text) == 10:
        text += "T00:00:00Z"
    elif "Z" not in text and "+" not in text[10:] and text[10:].count("-") == 0:
        text += "Z"
    try:
        return f"{humanize.parse_time(text):.9f}"
    except (ValueError, IndexError):
        raise UsageError(f'invalid value for "{flag}": "{value}"') from None


LOGS_OPTS = [Opt("details", BOOL, "Show extra details provided to logs"),
             Opt("f,follow", BOOL, "Follow log output"),
             Opt("since", STR, "Show logs since timestamp or relative (e.g. 42m)"),
             Opt("n,tail", STR, "Number of lines to show from the end of the logs", "all"),
             Opt("t,timestamps", BOOL, "Show timestamps"),
             Opt("until", STR, "Show logs before a timestamp or relative (e.g. 42m)")]


def logs(cli: Cli, argv: list[str]) -> int:
    p = parse("logs", "[OPTIONS] CONTAINER", "Fetch the logs of a container", LOGS_OPTS,
              argv, 1, 1)
    if p is None:
        return 0
    import time

    from ..stream import Demux, _write

    client = cli.client
    info = client.get(f"/containers/{p.args[0]}/json")
    now = time.time()
    response = client.call("GET", f"/containers/{info['Id']}/logs", {
        "stdout": True, "stderr": True, "follow": p.follow or None,
        "since": timestamp(p.since, now, "--since"),
        "until": timestamp(p.until, now, "--until"),
        "timestamps": p.timestamps or None, "details": p.details or None,
        "tail": p.tail})
    if info["Config"].get("Tty"):
        for chunk in response.chunks():
            _write(1, chunk)
    else:
        demux = Demux(_write)
        for chunk in response.chunks():
            demux.feed(chunk)
    return 0


EVENTS_OPTS = [Opt("f,filter", LIST, "Filter output based on conditions provided"),
               Opt("format", STR, "Format output using a custom template"),
               Opt("since", STR, "Show all events created since timestamp"),
               Opt("until", STR, "Stream events until this timestamp")]


def format_event(event: dict[str, Any]) -> str:
    """docker's default event line."""
    import time

    nano = event.get("timeNano") or int(event.get("time", 0)) * 10**9
    seconds, frac = divmod(int(nano), 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"
    actor = event.get("Actor") or {}
    line = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line


def events(cli: Cli, argv: list[str]) -> int:
    p = parse("events", "[OPTIONS]", "Get real time events from the server", EVENTS_OPTS,
              argv, 0, 0)
    if p is None:
        return 0
    import time

    now = time.time()
    response = cli.client.call("GET", "/events", {
        "since": timestamp(p.since, now, "--since"),
        "until": timestamp(p.until, now, "--until"), "filters": filters_param(p.filter)})
    template = None
    if p.format:
        from ..output import parse_template, prepare

        template = parse_template(prepare("{{json .}}" if p.format == "json"
                                          else p.format)[1])
    for event in response.json_stream():
        line = template.render(event) if template is not None else format_event(event)
        os.write(1, (line + "\n").encode())
    sys.stdout.flush()
    return 0
