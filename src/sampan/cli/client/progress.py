"""The daemon's JSON progress stream (pull, push, load, import) shown as docker does:
one bar per layer on a terminal (rich, imported only then), plain lines otherwise."""

from __future__ import annotations

import sys

from .errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, TextIO


def _line(message: dict[str, Any]) -> str:
    text = message.get("status") or message.get("stream") or ""
    if message.get("id"):
        text = f"{message['id']}: {text}"
    return text


def _fail(message: dict[str, Any]) -> None:
    detail = message.get("errorDetail") or {}
    raise CommandError(detail.get("message") or message["error"])


def show(messages: Iterable[dict[str, Any]], out: TextIO | None = None,
         tty: bool | None = None) -> list[dict[str, Any]]:
    """Display the stream; an "error" message raises CommandError. The messages seen."""
    out = out or sys.stdout
    if tty is None:
        tty = out.isatty()
    if tty:
        return _bars(messages, out)
    seen = []
    for message in messages:
        seen.append(message)
        if message.get("error"):
            _fail(message)
        if message.get("stream"):
            out.write(message["stream"])
            continue
        if (message.get("progressDetail") or {}).get("current") is not None or \
                message.get("aux") is not None:
            continue  # progress updates are for terminals
        text = _line(message)
        if text:
            out.write(text + "\n")
    out.flush()
    return seen


def _bars(messages: Iterable[dict[str, Any]], out: TextIO) -> list[dict[str, Any]]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        Task,
        TaskID,
        TextColumn,
    )
    from rich.text import Text

    class OnlyWithTotal(ProgressColumn):
        """A column shown only for layers with a known size ("Already exists" has none,
        and docker shows no bar for it)."""

        def __init__(self, inner: ProgressColumn) -> None:
            super().__init__()
            self.inner = inner

        def render(self, task: Task) -> Any:
            return self.inner.render(task) if task.total else Text("")

    console = Console(file=out)
    tasks: dict[str, TaskID] = {}
    seen = []
    with Progress(TextColumn("{task.fields[layer]}: {task.description:<18}"),
                  OnlyWithTotal(BarColumn()), OnlyWithTotal(DownloadColumn()),
                  console=console, transient=False) as bars:
        for message in messages:
            seen.append(message)
            if message.get("error"):
                _fail(message)
            if message.get("stream"):
                console.print(message["stream"], end="", markup=False, highlight=False)
                continue
            layer = message.get("id")
            status = message.get("status") or ""
            if not layer or message.get("aux") is not None or (
                    not message.get("progressDetail") and layer not in tasks and
                    status.startswith(("Pulling from", "The push refers"))):
                text = _line(message)
                if text:
                    console.print(text, markup=False, highlight=False)
                continue
            if layer not in tasks:
                tasks[layer] = bars.add_task(status, layer=layer, total=None, start=True)
            detail = message.get("progressDetail") or {}
            total = detail.get("total")
            current = detail.get("current")
            if current is not None:
                bars.update(tasks[layer], description=status, completed=current,
                            total=total or None)
            else:
                done = status in ("Pull complete", "Download complete", "Pushed")
                known = next((t.total for t in bars.tasks if t.id == tasks[layer]), None)
                if done and known:
                    bars.update(tasks[layer], description=status, completed=known)
                else:
                    bars.update(tasks[layer], description=status)
    return seen
