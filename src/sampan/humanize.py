"""docker's numbers for people: go-units' durations and sizes, dates as Go prints them.
Shared by the engine (ps Status) and the CLI, and as lean as the CLI's hot path needs."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """go-units HumanDuration ("5 minutes", "About an hour")."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = seconds / 60
    if int(minutes) == 1:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    hours = minutes / 60
    if round(hours) == 1:
        return "About an hour"
    if hours < 48:
        return f"{int(hours)} hours"
    if hours < 24 * 7 * 2:
        return f"{int(hours / 24)} days"
    if hours < 24 * 30 * 2:
        return f"{int(hours / 24 / 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{int(hours / 24 / 30)} months"
    return f"{int(hours / 24 / 365)} years"


def since(timestamp: float, now: float | None = None) -> str:
    """"5 minutes ago" for a Unix time."""
    import time

    return duration((now if now is not None else time.time()) - timestamp) + " ago"


_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def size(n: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, %.3g ("4.26MB", "0B")."""
    value, unit = _scaled(float(n), 1000.0, _DECIMAL)
    return f"{value:.{precision}g}{unit}"


def human_size(n: float) -> str:
    """go-units HumanSize (precision 4: "1.234MB")."""
    return size(n, 4)


def bytes_size(n: float) -> str:
    """go-units BytesSize: binary units with two decimals ("1.5MiB", "7.71GiB")."""
    value, unit = _scaled(float(n), 1024.0, _BINARY)
    return f"{value:.4g}{unit}"


def ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis: cut to ``width`` with a trailing "…"."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[:width - 1] + "…"


def go_time(timestamp: float) -> str:
    """time.Time's String() in UTC: 2024-01-02 15:04:05 +0000 UTC."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(timestamp))


def parse_time(text: str) -> float:
    """An RFC 3339 time from the API (nanoseconds allowed) as a Unix time."""
    import calendar

    if not text or text.startswith("0001-01-01"):
        return 0.0
    main, _, frac = text.partition(".")
    zone = ""
    if frac:
        digits = "".join(c for c in frac if c.isdigit())
        zone = frac[len(digits):]
        fraction = float("0." + digits) if digits else 0.0
    else:
        fraction = 0.0
        if main.endswith("Z"):
            main, zone = main[:-1], "Z"
        elif len(main) > 19:
            main, zone = main[:19], main[19:]
    fields = [int(x) for x in (main[0:4], main[5:7], main[8:10], main[11:13], main[14:16],
                               main[17:19])]
    base = calendar.timegm((*fields, 0, 0, 0))
    offset = 0
    if zone and zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        hours, _, minutes = zone[1:].partition(":")
        offset = sign * (int(hours) * 3600 + int(minutes or 0) * 60)
    return base + offset + fraction


def short_id(ident: str) -> str:
    """stringid.TruncateID: no "sha256:", 12 characters."""
    return ident.split(":", 1)[-1][:12]
