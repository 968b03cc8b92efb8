"""Text the planner compares and shows: key normalisation and invalid Unicode.

Keys (userName, group displayName) are compared after Unicode normalisation and case folding:
``josé`` typed on a Mac (NFD, ``e`` + combining accent) and on Windows (NFC, ``é``) are one
name to people and to most SCIM servers, so they must be one name to the planner too.

A string from Graph or a snapshot may hold a lone UTF-16 surrogate (``"\\ud800"``): valid in a
Python ``str`` and in JSON escapes, but not encodable as UTF-8, so it cannot be written to a
plan file, a terminal or a target. The planner reports such a value as an error of that one
object (``lone_surrogate``) and shows any that reach a message or an address escaped
(``printable``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def norm_key(key: str) -> str:
    """The form two keys are compared in: canonical caseless matching (Unicode 3.13),
    NFD -> casefold -> NFC. ASCII keys, nearly all of them, take the fast path."""
    if key.isascii():
        return key.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", key).casefold())


def has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def printable(text: str) -> str:
    """``text`` with every lone surrogate spelled as a ``\\udXXX`` escape (UTF-8 safe)."""
    if not has_surrogate(text):  # called per address: the ASCII test keeps it cheap
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def lone_surrogate(attributes: Mapping[str, Any]) -> tuple[str, str] | None:
    """(path, escaped surrogate) of the first value (in path order) holding a lone
    surrogate, looking into lists and objects; None when every string is valid."""
    # Called for every mapped object: a flat pass over the values (nearly all ASCII strings)
    # first, the ordered search only when one of them needs a closer look.
    for value in attributes.values():
        if value is None or (type(value) is str and value.isascii()):
            continue
        break
    else:
        return None
    for path in sorted(attributes):
        found = surrogate_in(attributes[path])
        if found is not None:
            return path, found
    return None


def surrogate_in(value: Any) -> str | None:
    """The first lone surrogate in ``value`` (looking into lists and objects), escaped."""
    if isinstance(value, str):
        match = None if value.isascii() else _SURROGATE.search(value)
        return None if match is None else f"\\u{ord(match.group()):04x}"
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = surrogate_in(key) if isinstance(key, str) else None
            if found is None:
                found = surrogate_in(item)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for item in value:
            found = surrogate_in(item)
            if found is not None:
                return found
    return None
