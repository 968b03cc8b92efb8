"""Dates the way Entra's expression functions see them.

Internally a DateTime is an aware ``datetime`` in UTC. It is shown as ``M/d/yyyy h:mm:ss tt``
(what Entra's CDate, DateAdd and Now return). Strings are read in the ISO 8601 forms Graph and
HR systems use (``2020-03-16-07:00``, ``2009-06-15T01:45:30Z``) and in Entra's own output form
(``8/25/2021 5:41:18 PM``). Values with an offset are converted to UTC; values without one are
taken as UTC. ``FormatDateTime`` uses .NET custom format strings, translated here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)  # Active Directory dates count 100 ns from here

_ISO = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,7}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$",
    re.IGNORECASE,
)
_US = re.compile(
    r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})"
    r"(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)


def _offset(text: str | None) -> timedelta:
    if not text or text.upper() == "Z":
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


def parse_datetime(text: str) -> datetime:
    """A UTC datetime from an ISO 8601 or ``M/d/yyyy h:mm:ss tt`` string; ValueError if neither."""
    m = _ISO.match(text)
    if m:
        year, month, day = int(m[1]), int(m[2]), int(m[3])
        hour, minute, second = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
        micro = int((m[7] or "0").ljust(7, "0")[:6])
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
        return local - _offset(m[8])
    m = _US.match(text)
    if m:
        month, day, year = int(m[1]), int(m[2]), int(m[3])
        hour, minute, second = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
        if m[7]:
            if not 1 <= hour <= 12:
                raise ValueError(f'hour {hour} is not valid with AM/PM in "{text}"')
            hour = hour % 12 + (12 if m[7].upper() == "PM" else 0)
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC) - _offset(m[8])
    raise ValueError(f'"{text}" is not a date (expected e.g. 2020-03-16T08:00:00Z)')


def format_entra(value: datetime) -> str:
    """``M/d/yyyy h:mm:ss tt`` in UTC, e.g. ``3/16/2020 7:00:00 AM``."""
    value = value.astimezone(UTC)
    hour12 = value.hour % 12 or 12
    ampm = "AM" if value.hour < 12 else "PM"
    return (
        f"{value.month}/{value.day}/{value.year} "
        f"{hour12}:{value.minute:02d}:{value.second:02d} {ampm}"
    )


def to_filetime(value: datetime) -> int:
    delta = value.astimezone(UTC) - FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def from_filetime(ticks: int) -> datetime:
    return FILETIME_EPOCH + timedelta(microseconds=ticks // 10)


# --- .NET custom date and time format strings -------------------------------------------------

_TOKEN = re.compile(
    r"yyyy|yy|y|MMMM|MMM|MM|M|dddd|ddd|dd|d|HH|H|hh|h|mm|m|ss|s|f{1,7}|F{1,7}|tt|t|zzz|zz|z|K"
    r"|'[^']*'|\"[^\"]*\"|\\.|."
)
_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
]  # fmt: skip
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

_PARSE_PATTERNS = {
    "yyyy": r"(?P<year>\d{4})",
    "yy": r"(?P<year2>\d{2})",
    "MMMM": r"(?P<monthname>[A-Za-z]+)",
    "MMM": r"(?P<monthabbr>[A-Za-z]{3})",
    "MM": r"(?P<month>\d{2})",
    "M": r"(?P<month>\d{1,2})",
    "dddd": r"[A-Za-z]+",
    "ddd": r"[A-Za-z]{3}",
    "dd": r"(?P<day>\d{2})",
    "d": r"(?P<day>\d{1,2})",
    "HH": r"(?P<hour>\d{2})",
    "H": r"(?P<hour>\d{1,2})",
    "hh": r"(?P<hour12>\d{2})",
    "h": r"(?P<hour12>\d{1,2})",
    "mm": r"(?P<minute>\d{2})",
    "m": r"(?P<minute>\d{1,2})",
    "ss": r"(?P<second>\d{2})",
    "s": r"(?P<second>\d{1,2})",
    "tt": r"(?P<ampm>[AaPp][Mm])",
    "t": r"(?P<ampm1>[AaPp])",
    "zzz": r"(?P<offset>[+-]\d{2}:\d{2})",
    "zz": r"(?P<offset>[+-]\d{2})",
    "z": r"(?P<offset>[+-]\d{1,2})",
    "K": r"(?P<offset>Z|[+-]\d{2}:\d{2})?",
}


def _literal(token: str) -> str | None:
    if token[0] in "'\"" and len(token) >= 2:
        return token[1:-1]
    if token[0] == "\\" and len(token) == 2:
        return token[1]
    return None


@lru_cache(maxsize=256)
def _parser(fmt: str) -> re.Pattern[str]:
    parts: list[str] = []
    seen: set[str] = set()
    for token in _TOKEN.findall(fmt):
        pattern = _PARSE_PATTERNS.get(token)
        if pattern is None and token[0] in "fF" and set(token) <= {"f", "F"}:
            pattern = rf"(?P<fraction>\d{{1,{len(token)}}})" if token[0] == "F" else None
            pattern = pattern or rf"(?P<fraction>\d{{{len(token)}}})"
        if pattern is not None:
            group = re.search(r"\?P<(\w+)>", pattern)
            if group and group[1] in seen:  # a field twice: the second must only match
                pattern = pattern.replace(f"?P<{group[1]}>", "?:")
            elif group:
                seen.add(group[1])
            parts.append(pattern)
            continue
        literal = _literal(token)
        parts.append(re.escape(literal if literal is not None else token))
    return re.compile("^\\s*" + "".join(parts) + "\\s*$")


def parse_formatted(text: str, fmt: str) -> datetime:
    """Parse ``text`` with a .NET custom format; converted to UTC (Entra runs in UTC)."""
    m = _parser(fmt).match(text)
    if m is None:
        raise ValueError(f'"{text}" does not match the format "{fmt}"')
    g = m.groupdict()
    year = int(g["year"]) if g.get("year") else 2000 + int(g["year2"]) if g.get("year2") else 1
    month = 1
    if g.get("month"):
        month = int(g["month"])
    elif g.get("monthname") or g.get("monthabbr"):
        name = (g.get("monthname") or g.get("monthabbr") or "").lower()
        matches = [i for i, m_ in enumerate(_MONTHS, 1) if m_.lower().startswith(name)]
        if not matches:
            raise ValueError(f'"{name}" is not a month name')
        month = matches[0]
    day = int(g["day"]) if g.get("day") else 1
    if g.get("hour12"):
        hour = int(g["hour12"]) % 12
        ampm = g.get("ampm") or g.get("ampm1") or "A"
        hour += 12 if ampm[0].upper() == "P" else 0
    else:
        hour = int(g["hour"]) if g.get("hour") else 0
    minute = int(g["minute"]) if g.get("minute") else 0
    second = int(g["second"]) if g.get("second") else 0
    micro = int((g.get("fraction") or "0").ljust(6, "0")[:6])
    result = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    offset = g.get("offset")
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        hours, _, minutes = offset[1:].partition(":")
        result -= sign * timedelta(hours=int(hours), minutes=int(minutes or 0))
    return result


def format_with(value: datetime, fmt: str) -> str:
    """Format a datetime (shown in UTC) with a .NET custom format string."""
    value = value.astimezone(UTC)
    out: list[str] = []
    for token in _TOKEN.findall(fmt):
        out.append(_format_token(value, token))
    return "".join(out)


def _format_token(v: datetime, token: str) -> str:
    simple = {
        "yyyy": f"{v.year:04d}",
        "yy": f"{v.year % 100:02d}",
        "y": str(v.year % 100),
        "MMMM": _MONTHS[v.month - 1],
        "MMM": _MONTHS[v.month - 1][:3],
        "MM": f"{v.month:02d}",
        "M": str(v.month),
        "dddd": _DAYS[v.weekday()],
        "ddd": _DAYS[v.weekday()][:3],
        "dd": f"{v.day:02d}",
        "d": str(v.day),
        "HH": f"{v.hour:02d}",
        "H": str(v.hour),
        "hh": f"{v.hour % 12 or 12:02d}",
        "h": str(v.hour % 12 or 12),
        "mm": f"{v.minute:02d}",
        "m": str(v.minute),
        "ss": f"{v.second:02d}",
        "s": str(v.second),
        "tt": "AM" if v.hour < 12 else "PM",
        "t": "A" if v.hour < 12 else "P",
        "zzz": "+00:00",
        "zz": "+00",
        "z": "+0",
        "K": "Z",
    }
    if token in simple:
        return simple[token]
    if set(token) == {"f"}:
        return f"{v.microsecond:06d}0"[: len(token)]
    if set(token) == {"F"}:
        return f"{v.microsecond:06d}0"[: len(token)].rstrip("0")
    literal = _literal(token)
    return literal if literal is not None else token
