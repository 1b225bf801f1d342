"""Rows out as docker prints them: a Go template per row, ``table`` headers, and Go's
tabwriter layout (cells padded to the column's widest plus 3, at least 10)."""

from __future__ import annotations

import sys

from .gotemplate import Template, TemplateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


class Headers(dict[str, str]):
    """A table's header row: placeholders give column titles; ``.Label "a.b-c"`` gives
    "b c", as docker's SubHeaderContext."""

    def Label(self, name: str) -> str:
        return name.split(".")[-1].replace("-", " ").replace("_", " ")


def tabwrite(lines: list[str], minwidth: int = 10, padding: int = 3) -> str:
    """text/tabwriter with docker's settings: tab-terminated cells are aligned per column;
    the last cell of a line is not."""
    rows = [line.split("\t") for line in lines]
    widths: list[int] = []
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            if i >= len(widths):
                widths.append(minwidth)
            widths[i] = max(widths[i], len(cell) + padding)
    out = []
    for cells in rows:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        parts.append(cells[-1])
        out.append("".join(parts))
    return "\n".join(out)


def prepare(fmt: str) -> tuple[bool, str]:
    """(is_table, template text) as docker's formatter.preFormat: ``table`` stripped,
    ``\\t`` and ``\\n`` turned into tab and newline."""
    table = fmt.startswith("table")
    text = fmt[5:] if table else fmt
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return table, text


def parse_template(text: str) -> Template:
    from .errors import CommandError

    try:
        return Template(text)
    except TemplateError as exc:
        raise CommandError(f"template parsing error: template: :1: {exc}", 64) from None


def render(fmt: str, items: Iterable[Any], headers: dict[str, str] | None = None,
           out: Any = None) -> None:
    """Print ``items`` with ``fmt`` (``json`` is ``{{json .}}``); with ``table``, a header
    from ``headers`` and the tabwriter layout."""
    from .errors import CommandError

    out = out or sys.stdout
    if fmt == "json":
        fmt = "{{json .}}"
    table, text = prepare(fmt)
    template = parse_template(text)
    lines: list[str] = []
    try:
        if table:
            lines.extend(template.render(Headers(headers or {}), header=True).split("\n"))
        for item in items:
            lines.extend(template.render(item).split("\n"))
    except TemplateError as exc:
        raise CommandError(f"template: :1: executing \"\" at <{text[:40]}>: {exc}") \
            from None
    if table:
        out.write(tabwrite(lines) + "\n")
    else:
        out.write("".join(line + "\n" for line in lines))
