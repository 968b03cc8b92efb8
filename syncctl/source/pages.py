"""What a Graph page must be before any of it is used: a JSON object with a ``value`` array of
objects that each have an ``id``, and, when asked for, a valid ``@odata.count``."""

from __future__ import annotations

import json
from typing import Any

import httpx

from syncctl.errors import GraphError


def page_values(label: str, page: Any) -> list[dict[str, Any]]:
    """The page's items, after checking the page is what Graph sends: a JSON object with a
    ``value`` array of objects that each have an ``id``. Anything else fails the read."""
    if not isinstance(page, dict):
        raise GraphError(f"page is {json_kind(page)}, not a JSON object", request=label)
    values = page.get("value")
    if not isinstance(values, list):
        raise GraphError("response has no `value` array", request=label)
    for position, item in enumerate(values):
        if not isinstance(item, dict):
            raise GraphError(
                f"item {position} of a page is {json_kind(item)}, not an object",
                request=label,
            )
        if not isinstance(item.get("id"), str) or not item["id"]:
            raise GraphError(f"item {position} of a page has no `id`", request=label)
    return values


def announced_count(label: str, page: Any, *, counted: bool) -> int | None:
    """``@odata.count`` of a first page, when the request asked for it (then it must be
    there: a counted read without its count cannot be checked, so it is not trusted)."""
    if not counted or not isinstance(page, dict):
        return None
    count = page.get("@odata.count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise GraphError(
            "asked for $count=true, but the first page has no valid @odata.count",
            request=label,
        )
    return count


def check_complete(label: str, distinct: int, expected: int | None) -> None:
    """A counted collection holds at least the ``@odata.count`` of its first page. More is an
    object added while paging: a real answer. Fewer is a page that lost items, which must
    never pass for the whole collection."""
    if expected is not None and distinct < expected:
        raise GraphError(
            f"incomplete answer: {distinct} distinct objects read, but the first page "
            f"counted {expected} (@odata.count); not using a partial collection",
            request=label,
        )


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
