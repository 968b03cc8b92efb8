"""Every function of the Entra expression language, with its argument rules.

Each eager implementation takes evaluated argument values (an omitted argument is ``None``)
and raises ValueError with a message for a bad value; the compiler adds the function's name.
Functions that choose which arguments to evaluate (IIF, Switch, Coalesce, SelectUniqueValue)
are built by the compiler from ``LAZY``. Indexes are 1-based, as Microsoft documents.
Where Microsoft's behaviour is a known bug, the sane behaviour is here and in
docs/expressions.md.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from syncctl.expressions.dates import (
    format_with,
    from_filetime,
    parse_formatted,
    to_filetime,
)
from syncctl.expressions.deferred import guid, now, random_string
from syncctl.expressions.values import (
    DROP,
    boolean,
    date_value,
    is_null,
    is_null_or_empty,
    render,
    text,
    whole_number,
)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int | None  # None: any number
    impl: Callable[..., Any] | None = None  # eager; None for the lazy ones
    nondeterministic: bool = False  # Guid, Now, RandomString: only with apply: on_create
    top_level: bool = False  # must be the outermost function (optionally inside Redact)
    pairs: bool = False  # Switch: source, default, then key/value pairs (even count)

    def arity_problem(self, count: int) -> str | None:
        lo, hi = self.min_args, self.max_args
        if self.pairs and (count < lo or count % 2):
            return (
                f"{self.name} takes a source, a default and key/value pairs "
                f"(an even number of arguments, at least {lo}); got {count}"
            )
        if count < lo or (hi is not None and count > hi):
            if hi is None:
                expected = f"at least {lo}"
            elif lo == hi:
                expected = str(lo)
            else:
                expected = f"{lo} to {hi}"
            plural = "" if expected == "1" else "s"
            return f"{self.name} takes {expected} argument{plural}, got {count}"
        return None


# --- string functions -----------------------------------------------------------------------


def _append(source: Any, suffix: Any) -> Any:
    if is_null(source):
        return None  # null stays null so `default` and IgnoreFlowIfNullOrEmpty still apply
    return text(source) + ("" if suffix is None else text(suffix))


def _bit_and(a: Any, b: Any) -> Any:
    if is_null(a) or is_null(b):
        return None
    return whole_number(a, "value1") & whole_number(b, "value2")


def _cbool(value: Any) -> bool:
    return boolean(value, "Expression")


def _cdate(value: Any) -> Any:
    return None if is_null_or_empty(value) else date_value(value, "expression")


def _base64(source: Any) -> Any:
    if is_null(source):
        return None
    return base64.b64encode(text(source).encode("utf-16-le")).decode("ascii")


def _utf8_hex(source: Any) -> Any:
    return None if is_null(source) else text(source).encode("utf-8").hex().upper()


def _count(attribute: Any) -> int:
    if is_null(attribute):
        return 0
    return len(attribute) if isinstance(attribute, list) else 1


def _cstr(value: Any) -> Any:
    return None if value is None else text(value)


_INTERVALS = ("yyyy", "m", "d", "ww", "h", "n", "s")


def _interval(value: Any) -> str:
    name = "" if value is None else text(value)
    if name not in _INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(_INTERVALS)}, got {render(value)}")
    return name


def _add_months(value: datetime, months: int) -> datetime:
    total = value.year * 12 + value.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    # VBA's DateAdd clamps to the last day of a shorter month (Jan 31 + 1 month = Feb 28/29).
    for day in range(value.day, 27, -1):
        try:
            return value.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return value.replace(year=year, month=month)


def _date_add(interval: Any, amount: Any, when: Any) -> Any:
    unit = _interval(interval)
    if is_null_or_empty(when):
        return None
    count = whole_number(amount, "value")
    moment = date_value(when, "dateTime")
    if unit == "yyyy":
        return _add_months(moment, 12 * count)
    if unit == "m":
        return _add_months(moment, count)
    seconds = {"d": 86_400, "ww": 7 * 86_400, "h": 3_600, "n": 60, "s": 1}[unit]
    return moment + timedelta(seconds=seconds * count)


def _date_diff(interval: Any, first: Any, second: Any) -> Any:
    unit = _interval(interval)
    if is_null_or_empty(first) or is_null_or_empty(second):
        return None
    d1, d2 = date_value(first, "date1"), date_value(second, "date2")
    if unit == "yyyy":
        return d2.year - d1.year
    if unit == "m":
        return (d2.year - d1.year) * 12 + d2.month - d1.month
    if unit == "ww":
        # Calendar weeks (VBA WeekOfYear): Sundays crossed between the two dates.
        s1 = d1.date() - timedelta(days=(d1.weekday() + 1) % 7)
        s2 = d2.date() - timedelta(days=(d2.weekday() + 1) % 7)
        return (s2 - s1).days // 7
    seconds = (d2 - d1).total_seconds()
    per = {"d": 86_400, "h": 3_600, "n": 60, "s": 1}[unit]
    return int(seconds / per)  # truncated toward zero, as .NET's (long)TimeSpan.TotalX


def _date_from_num(value: Any) -> Any:
    return None if is_null_or_empty(value) else from_filetime(whole_number(value, "value"))


def _num_from_date(value: Any) -> Any:
    return None if is_null_or_empty(value) else to_filetime(date_value(value, "value"))


def _format_date_time(source: Any, *rest: Any) -> Any:
    # (source, dateTimeStyles, inputFormat, outputFormat) or the older 3-argument form.
    if len(rest) == 3:
        _styles, input_format, output_format = rest
    else:
        input_format, output_format = rest
    if is_null_or_empty(source):
        return None
    if output_format is None:
        raise ValueError("outputFormat is required")
    if isinstance(source, datetime):
        moment = source
    elif input_format is None or input_format == "":
        moment = date_value(source, "source")
    else:
        moment = parse_formatted(text(source), text(input_format))
    return format_with(moment, text(output_format))


def _ignore_flow(value: Any) -> Any:
    return DROP if is_null_or_empty(value) else value


_TEXT_COMPARE = "vbTextCompare"
_BINARY_COMPARE = "vbBinaryCompare"


def _instr(haystack: Any, needle: Any, start: Any = None, compare: Any = None) -> Any:
    if haystack is None or needle is None:
        return None
    h, n = text(haystack), text(needle)
    begin = 1 if start is None else whole_number(start, "start")
    if begin < 1:
        raise ValueError(f"start is 1-based and must be at least 1, got {begin}")
    mode = _BINARY_COMPARE if compare is None else text(compare)
    if mode not in (_TEXT_COMPARE, _BINARY_COMPARE):
        raise ValueError(
            f"compareType must be vbTextCompare or vbBinaryCompare, got {render(compare)}"
        )
    if mode == _TEXT_COMPARE:
        h, n = h.casefold(), n.casefold()
    return h.find(n, begin - 1) + 1


def _is_null(value: Any) -> bool:
    return is_null(value)


def _is_null_or_empty(value: Any) -> bool:
    return is_null_or_empty(value)


def _is_present(value: Any) -> bool:
    return not is_null_or_empty(value)


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _item(attribute: Any, index: Any) -> Any:
    position = whole_number(index, "index")
    if position < 1:
        raise ValueError(f"index is 1-based and must be at least 1, got {position}")
    if is_null(attribute):
        return None
    values = attribute if isinstance(attribute, list) else [attribute]
    return values[position - 1] if position <= len(values) else None


def _join(separator: Any, *sources: Any) -> str:
    parts: list[str] = []
    for source in sources:
        if isinstance(source, list):
            parts.extend(text(v) for v in source if v is not None)
        elif source is not None:
            parts.append(text(source))
    return ("" if separator is None else text(separator)).join(parts)


def _left(source: Any, count: Any) -> str:
    n = whole_number(count, "NumChars")
    if source is None:
        return ""  # documented: null input gives ""
    s = text(source)
    if n < 0:
        return s  # documented: NumChars < 0 returns the input
    return s[:n]


def _mid(source: Any, start: Any, length: Any) -> Any:
    begin = whole_number(start, "start")
    size = whole_number(length, "length")
    if begin < 1:
        raise ValueError(f"start is 1-based and must be at least 1, got {begin}")
    if size < 0:
        raise ValueError(f"length must not be negative, got {size}")
    if source is None:
        return None
    return text(source)[begin - 1 : begin - 1 + size]


# Letters Unicode does not decompose into base + accent, per Microsoft's table.
_DIACRITIC_EXTRA = str.maketrans(
    {"æ": "ae", "Æ": "AE", "ø": "oe", "Ø": "OE", "œ": "oe", "Œ": "OE", "ß": "ss",
     "ł": "l", "Ł": "L", "ı": "i", "đ": "d", "Đ": "D"}
)  # fmt: skip


def _normalize_diacritics(source: Any) -> Any:
    if source is None:
        return None
    value = text(source)
    if value.isascii():
        return value
    decomposed = unicodedata.normalize("NFD", value)
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return unicodedata.normalize("NFC", stripped.translate(_DIACRITIC_EXTRA))


def _not(source: Any) -> bool:
    # Documented: "If source value is True, returns False. Otherwise, returns True."
    try:
        return not boolean(source, "source")
    except ValueError:
        return True


_APOSTROPHES = frozenset("'’")


def _is_default_separator(char: str) -> bool:
    # .NET ToTitleCase: words are runs of letters, marks and digits; apostrophes stay inside.
    return char not in _APOSTROPHES and unicodedata.category(char)[0] not in "LMN"


# ASCII fast path of the default rule: a word starts after anything but a letter, a digit or
# an apostrophe.
_ASCII_WORD_START = re.compile(r"(?:^|(?<=[^A-Za-z0-9'’]))[a-z]")


@lru_cache(maxsize=64)
def _word_start(separators: str) -> re.Pattern[str]:
    chars = re.escape(separators)
    return re.compile(rf"(?:^|(?<=[{chars}]))[^{chars}]" if separators else r"^.", re.DOTALL)


def _pcase(source: Any, separators: Any = None) -> Any:
    if source is None:
        return None
    s = text(source).lower()
    if separators is not None:
        return _word_start(text(separators)).sub(lambda m: m[0].upper(), s)
    if s.isascii():
        return _ASCII_WORD_START.sub(lambda m: m[0].upper(), s)
    out: list[str] = []
    at_start = True
    for char in s:
        if _is_default_separator(char):
            at_start = True
            out.append(char)
        else:
            out.append(char.upper() if at_start else char)
            at_start = False
    return "".join(out)


def _redact(value: Any) -> Any:
    return value  # the mapping is marked redacted at compile time; the value is unchanged


def _remove_duplicates(attribute: Any) -> Any:
    if not isinstance(attribute, list):
        return attribute
    seen: set[Any] = set()
    out: list[Any] = []
    for value in attribute:
        marker = text(value) if not isinstance(value, str) else value
        if marker not in seen:
            seen.add(marker)
            out.append(value)
    return out


_DOTNET_NAMED_GROUP = re.compile(r"\(\?<(?![=!])(\w+)>")
_DOTNET_BACKREF = re.compile(r"\\k<(\w+)>")


@lru_cache(maxsize=512)
def dotnet_regex(pattern: str) -> re.Pattern[str]:
    """A .NET regex as a Python one: ``(?<name>...)`` and ``\\k<name>`` are translated."""
    translated = _DOTNET_BACKREF.sub(r"(?P=\1)", _DOTNET_NAMED_GROUP.sub(r"(?P<\1>", pattern))
    try:
        return re.compile(translated)
    except re.error as exc:
        raise ValueError(f'invalid regular expression "{pattern}": {exc}') from None


_DOTNET_SUBSTITUTION = re.compile(r"\$(?:\$|(\d+)|\{(\w+)\}|(&))")


def dotnet_replacement(match: re.Match[str], template: str) -> str:
    """Expand a .NET replacement string: ``$1``, ``${name}``, ``$&``, ``$$``."""

    def expand(token: re.Match[str]) -> str:
        if token[0] == "$$":
            return "$"
        if token[3]:
            return match[0]
        key: int | str = int(token[1]) if token[1] else token[2]
        try:
            return match[key] or ""
        except (IndexError, re.error):
            return token[0]

    return _DOTNET_SUBSTITUTION.sub(expand, template)


def replace(  # noqa: PLR0917 (Microsoft's signature)
    source: Any,
    old_value: Any = None,
    pattern: Any = None,
    group: Any = None,
    replacement: Any = None,
    replacement_attribute_value: Any = None,
    template: Any = None,
) -> Any:
    """Replace in its documented forms; ``replacement_attribute_value`` is already looked up."""
    if old_value is not None and template is not None:
        return None if source is None else text(template).replace(text(old_value), text(source))
    if source is None:
        return None
    s = text(source)
    if old_value is not None and replacement is not None:
        old = text(old_value)
        return s.replace(old, text(replacement)) if old else s
    if pattern is not None:
        regex = dotnet_regex(text(pattern))
        if group is not None:
            name = text(group)
            if name not in regex.groupindex:
                raise ValueError(f'regexGroupName "{name}" is not a group of the pattern')
            if replacement is not None:
                new = text(replacement)
            elif replacement_attribute_value is not None:
                new = text(replacement_attribute_value)
            else:
                return s  # the attribute named by replacementAttributeName is null
            return _replace_group(regex, name, s, new)
        if replacement is not None:
            new = text(replacement)
            return regex.sub(lambda m: dotnet_replacement(m, new), s)
    raise ValueError(
        "give oldValue with replacementValue or template, or regexPattern with "
        "replacementValue (optionally regexGroupName) or regexGroupName + replacementAttributeName"
    )


def _replace_group(regex: re.Pattern[str], group: str, source: str, new: str) -> str:
    out: list[str] = []
    last = 0
    for m in regex.finditer(source):
        begin, end = m.span(group)
        if begin < 0:
            continue
        out.append(source[last:begin])
        out.append(new)
        last = end
    out.append(source[last:])
    return "".join(out)


def _split(source: Any, delimiter: Any) -> Any:
    if source is None:
        return None
    sep = text(delimiter) if delimiter is not None else ""
    if not sep:
        raise ValueError("delimiter must not be empty")
    # Microsoft's example shows "A, B" split on "," as ["A", "B"]: items are trimmed.
    return [part.strip() for part in text(source).split(sep)]


def _strip_spaces(source: Any) -> Any:
    return None if source is None else text(source).replace(" ", "")


def _is_turkic(culture: Any) -> bool:
    return culture is not None and text(culture).lower().split("-")[0] in ("tr", "az")


def _to_lower(source: Any, culture: Any = None) -> Any:
    if source is None:
        return None
    s = text(source)
    if _is_turkic(culture):
        s = s.replace("I", "ı").replace("İ", "i")
    return s.lower()


def _to_upper(source: Any, culture: Any = None) -> Any:
    if source is None:
        return None
    s = text(source)
    if _is_turkic(culture):
        s = s.replace("i", "İ").replace("ı", "I")
    return s.upper()


@lru_cache(maxsize=64)
def _delimiters(chars: str) -> re.Pattern[str]:
    return re.compile("[" + re.escape(chars) + "]+")


def _word(source: Any, number: Any, delimiters: Any) -> str:
    n = whole_number(number, "WordNumber")
    if source is None or n < 1:
        return ""  # documented
    chars = "" if delimiters is None else text(delimiters)
    s = text(source)
    words = [w for w in _delimiters(chars).split(s) if w] if chars else [s] if s else []
    return words[n - 1] if n <= len(words) else ""


_SPECS = [
    FunctionSpec("Append", 2, 2, _append),
    FunctionSpec("BitAnd", 2, 2, _bit_and),
    FunctionSpec("CBool", 1, 1, _cbool),
    FunctionSpec("CDate", 1, 1, _cdate),
    FunctionSpec("Coalesce", 1, None),
    FunctionSpec("ConvertToBase64", 1, 1, _base64),
    FunctionSpec("ConvertToUTF8Hex", 1, 1, _utf8_hex),
    FunctionSpec("Count", 1, 1, _count),
    FunctionSpec("CStr", 1, 1, _cstr),
    FunctionSpec("DateAdd", 3, 3, _date_add),
    FunctionSpec("DateDiff", 3, 3, _date_diff),
    FunctionSpec("DateFromNum", 1, 1, _date_from_num),
    FunctionSpec("FormatDateTime", 3, 4, _format_date_time),
    FunctionSpec("Guid", 0, 0, guid, nondeterministic=True),
    FunctionSpec("IgnoreFlowIfNullOrEmpty", 1, 1, _ignore_flow, top_level=True),
    FunctionSpec("IIF", 3, 3),
    FunctionSpec("InStr", 2, 4, _instr),
    FunctionSpec("IsNull", 1, 1, _is_null),
    FunctionSpec("IsNullOrEmpty", 1, 1, _is_null_or_empty),
    FunctionSpec("IsPresent", 1, 1, _is_present),
    FunctionSpec("IsString", 1, 1, _is_string),
    FunctionSpec("Item", 2, 2, _item),
    FunctionSpec("Join", 2, None, _join),
    FunctionSpec("Left", 2, 2, _left),
    FunctionSpec("Mid", 3, 3, _mid),
    FunctionSpec("NormalizeDiacritics", 1, 1, _normalize_diacritics),
    FunctionSpec("Not", 1, 1, _not),
    FunctionSpec("Now", 0, 0, now, nondeterministic=True),
    FunctionSpec("NumFromDate", 1, 1, _num_from_date),
    FunctionSpec("PCase", 1, 2, _pcase),
    FunctionSpec("RandomString", 5, 6, random_string, nondeterministic=True),
    FunctionSpec("Redact", 1, 1, _redact),
    FunctionSpec("RemoveDuplicates", 1, 1, _remove_duplicates),
    FunctionSpec("Replace", 2, 7),
    FunctionSpec("SelectUniqueValue", 2, None, top_level=True),
    FunctionSpec("Split", 2, 2, _split),
    FunctionSpec("StripSpaces", 1, 1, _strip_spaces),
    FunctionSpec("Switch", 4, None, pairs=True),
    FunctionSpec("ToLower", 1, 2, _to_lower),
    FunctionSpec("ToUpper", 1, 2, _to_upper),
    FunctionSpec("Word", 3, 3, _word),
]

FUNCTIONS: dict[str, FunctionSpec] = {spec.name: spec for spec in _SPECS}

# Documented by Microsoft but meaningless here: syncctl does not read app role assignments.
UNSUPPORTED = {
    "AppRoleAssignmentsComplex": "app role assignments are not read by syncctl",
    "SingleAppRoleAssignment": "app role assignments are not read by syncctl",
}
