"""Runtime values of the expression language and the conversions functions share.

Values are plain Python: ``None`` (null: absent attribute), ``str``, ``int``/``float``,
``bool``, ``list`` (a multi-valued attribute) and ``datetime`` (aware, UTC; from CDate and the
other date functions, shown as ``M/d/yyyy h:mm:ss tt`` when it leaves an expression).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from syncctl.expressions.dates import format_entra, parse_datetime


class EvaluationError(Exception):
    """Evaluating an expression failed for one object; ``function`` is where (if known)."""

    def __init__(self, function: str | None, message: str) -> None:
        super().__init__(message)
        self.function = function
        self.message = message


class _Drop:
    """IgnoreFlowIfNullOrEmpty's verdict: leave the attribute out of the flow."""

    _instance: _Drop | None = None

    def __new__(cls) -> _Drop:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()


def is_null(value: Any) -> bool:
    return value is None or value == []


def is_null_or_empty(value: Any) -> bool:
    return value is None or value in ("", [])


def text(value: Any) -> str:
    """The string form of a single value (CStr); ValueError for lists and objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return format_entra(value)
    if isinstance(value, list):
        raise ValueError(
            f"expects a single value, got a multi-valued attribute ({len(value)} values)"
        )
    raise ValueError(f"expects a single value, got {type(value).__name__}")


def whole_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} must be a whole number, got {render(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip(), 0) if value.strip().lower().startswith("0x") else int(value)
        except ValueError:
            pass
    raise ValueError(f"{what} must be a whole number, got {render(value)}")


def number(value: Any, what: str) -> int | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                pass
    raise ValueError(f"{what} must be a number, got {render(value)}")


def boolean(value: Any, what: str) -> bool:
    """True/False from a boolean, "True"/"False" (any case) or a number (non-zero is True)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        try:
            return float(lowered) != 0
        except ValueError:
            pass
    raise ValueError(f"{what} must be True or False, got {render(value)}")


def date_value(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value)
    raise ValueError(f"{what} must be a date, got {render(value)}")


def render(value: Any) -> str:
    """A short, safe description of a value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'"{shown}"'
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    return text(value) if isinstance(value, (bool, int, float, datetime)) else type(value).__name__


def loose_equal(left: Any, right: Any) -> bool:
    """Equality for ``=``, Switch keys and filters: case-sensitive for text; numbers and
    booleans compare by value even when one side is their string form ("1", "True")."""
    if left is None or right is None:
        return is_null_or_empty(left) and is_null_or_empty(right)
    if type(left) is type(right):
        return bool(left == right)
    if isinstance(left, bool) or isinstance(right, bool):
        try:
            return boolean(left, "value") == boolean(right, "value")
        except ValueError:
            return False
    if isinstance(left, (int, float)) or isinstance(right, (int, float)):
        try:
            return number(left, "value") == number(right, "value")
        except ValueError:
            return False
    if isinstance(left, datetime) or isinstance(right, datetime):
        try:
            return date_value(left, "value") == date_value(right, "value")
        except ValueError:
            return False
    if isinstance(left, list) or isinstance(right, list):
        return False
    return text(left) == text(right)


def ordering_key(left: Any, right: Any) -> tuple[Any, Any] | None:
    """Comparable forms of two values for < and >: numbers, then dates, then text."""
    if is_null_or_empty(left) or is_null_or_empty(right):
        return None
    if isinstance(left, bool) or isinstance(right, bool):
        return None  # booleans have no order
    try:
        return number(left, "value"), number(right, "value")
    except ValueError:
        if isinstance(left, (int, float)) or isinstance(right, (int, float)):
            return None  # a number against non-numeric text: no order
    if isinstance(left, datetime) or isinstance(right, datetime):
        try:
            return date_value(left, "value"), date_value(right, "value")
        except ValueError:
            return None
    if isinstance(left, list) or isinstance(right, list):
        return None
    return text(left), text(right)
