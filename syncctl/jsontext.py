"""Indented JSON at the C encoder's speed: the text ``json.dumps(indent=N, sort_keys=True)``
writes, for snapshot files (``syncctl.source.snapshot``) and state documents
(``syncctl.state.store``), which hold 100,000 users or ids and are written on every run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import cache
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any


def indented_json(value: Any, *, indent: int, ensure_ascii: bool) -> str:
    """``json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=...)``, the same text, with
    a third of the memory: ``json`` pretty-prints in pure Python, a few million small strings
    (400 MB at 100,000 users). Here every object or array holding no non-empty object or
    array (a user's attributes, a member list) is one call of the C encoder, with the line
    break and indent of its depth as the item separator."""
    parts: list[str] = []
    emit_indented_json(value, parts.append, indent=indent, ensure_ascii=ensure_ascii)
    return "".join(parts)


def emit_indented_json(
    value: Any, emit: Callable[[str], object], *, indent: int, ensure_ascii: bool
) -> None:
    """``indented_json``, handing the text to ``emit`` piece by piece (to write it as it is
    made). A string is never split between two pieces."""
    string = encode_basestring_ascii if ensure_ascii else encode_basestring

    def scalar(item: Any) -> str:
        return string(item) if item.__class__ is str else _encoder(0, indent, ensure_ascii)(item)

    def key_text(key: Any) -> str:
        if isinstance(key, str):
            return string(key)
        # json's rules for other keys (int, float, bool, None; else TypeError): a one-entry
        # object without its braces and ": 0".
        return _encoder(0, indent, ensure_ascii)({key: 0})[1:-4]

    def container(item: Any, depth: int) -> None:
        """``item``: a non-empty dict, list or tuple at ``depth``."""
        is_dict = isinstance(item, dict)
        inner = "\n" + " " * indent * (depth + 1)
        if _flat(item.values() if is_dict else item):
            body = _encoder(depth + 1, indent, ensure_ascii)(item)
            emit(body[0] + inner + body[1:-1] + inner[:-indent] + body[-1])
            return
        entries = sorted(item.items()) if is_dict else enumerate(item)
        emit("{" if is_dict else "[")
        for index, (key, element) in enumerate(entries):
            head = ("," if index else "") + inner + (key_text(key) + ": " if is_dict else "")
            if element and isinstance(element, _CONTAINERS):
                emit(head)
                container(element, depth + 1)
            else:
                emit(head + scalar(element))
        emit(inner[:-indent] + ("}" if is_dict else "]"))

    if value and isinstance(value, _CONTAINERS):
        container(value, 0)
    else:
        emit(scalar(value))


_CONTAINERS = (dict, list, tuple)  # what json writes as objects and arrays


def _flat(items: Iterable[Any]) -> bool:
    """No item is a non-empty object or array. The types are looked at first (in C): a
    member list of 100,000 ids is one set of one type, not 100,000 tests."""
    if not any(issubclass(kind, _CONTAINERS) for kind in set(map(type, items))):
        return True
    return not any(item and isinstance(item, _CONTAINERS) for item in items)


@cache
def _encoder(depth: int, indent: int, ensure_ascii: bool) -> Callable[[Any], str]:
    """json's C encoder, items separated by a line break and the indent of ``depth``."""
    separators = (",\n" + " " * indent * depth, ": ")
    return json.JSONEncoder(sort_keys=True, ensure_ascii=ensure_ascii, separators=separators).encode
