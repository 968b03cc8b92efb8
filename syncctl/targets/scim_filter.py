"""SCIM filter expressions built from untrusted values (RFC 7644 §3.4.2.2).

A filter's comparison value is a JSON value, so a string is written as a JSON string literal:
quotes, backslashes and control characters are escaped and the value can never end the literal
early (a userName of ``x" or userName pr or "`` stays one string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_ATTRIBUTE_PATH = re.compile(r"^(?:urn:[A-Za-z0-9:._-]+:)?[A-Za-z][\w$-]*(?:\.[A-Za-z][\w$-]*)?$")


def literal(value: str | bool | int) -> str:
    """The value as a SCIM filter compValue (a JSON literal)."""
    return json.dumps(value, ensure_ascii=False)


def eq(attribute: str, value: str | bool | int) -> str:
    """``attribute eq "value"``; the attribute path is checked, never taken from data."""
    if not _ATTRIBUTE_PATH.match(attribute):
        raise ValueError(f"not a plain SCIM attribute path: {attribute!r}")
    return f"{attribute} eq {literal(value)}"


def all_eq(values: Mapping[str, str | bool | int]) -> str:
    """``a eq "x" and b eq "y"`` (sorted by attribute, so the same inputs give one filter)."""
    return " and ".join(eq(name, values[name]) for name in sorted(values))


def member_path(user_id: str) -> str:
    """The PATCH path that selects one member: ``members[value eq "id"]``."""
    return f"members[value eq {literal(user_id)}]"
