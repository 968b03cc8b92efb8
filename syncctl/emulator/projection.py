"""Turning directory objects into the JSON Graph returns, with a cache of encoded fragments.

Serving 100,000 users must cost less than the client's parse; most of the cost is JSON
encoding, so each object's encoded form is cached per (id, version, selection) and pages are
assembled by joining bytes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from syncctl.emulator.responses import encode_json
from syncctl.emulator.schema import ODATA_TYPE, defaults_of, properties_of

_CACHE_LIMIT = 400_000  # objects per bucket
_BUCKET_LIMIT = 32


@functools.lru_cache(maxsize=256)
def _shown(kind: str, select: tuple[str, ...] | None) -> tuple[str, ...]:
    """Properties to show: the selection without names the kind lacks (``$select=
    userPrincipalName`` on a group member is left out, as Graph does)."""
    names = defaults_of(kind) if select is None else select
    known = properties_of(kind)
    return tuple(name for name in names if name in known)


def project(
    obj: Mapping[str, Any],
    kind: str,
    select: Sequence[str] | None,
    *,
    with_type: bool = False,
    always_id: bool = False,
) -> dict[str, Any]:
    """The object as Graph shows it: selected (or default) properties, missing ones null."""
    names = _shown(kind, None if select is None else tuple(select))
    result: dict[str, Any] = {"@odata.type": ODATA_TYPE[kind]} if with_type else {}
    if always_id and "id" not in names:
        result["id"] = obj["id"]
    get = obj.get
    for name in names:
        result[name] = get(name)
    if "passwordProfile" in result:
        result["passwordProfile"] = None  # write-only: Graph never returns the password
    return result


Bucket = dict[str, tuple[int, bytes]]  # object id -> (version, encoded object)


class FragmentCache:
    """Encoded objects per (selection, with @odata.type); an entry is used only while the
    object's version is unchanged."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[tuple[str, ...] | None, bool], Bucket] = {}
        self._lock = threading.Lock()

    def bucket(self, select: tuple[str, ...] | None, with_type: bool) -> Bucket:
        key = (select, with_type)
        with self._lock:
            found = self._buckets.get(key)
            if found is None or len(found) >= _CACHE_LIMIT:
                if len(self._buckets) >= _BUCKET_LIMIT:
                    self._buckets.clear()
                found = self._buckets[key] = {}
            return found


def page_body(meta: Sequence[tuple[str, Any]], fragments: Sequence[bytes]) -> bytes:
    """``{meta..., "value": [fragments]}`` without re-encoding the fragments."""
    head = b",".join(encode_json(k) + b":" + encode_json(v) for k, v in meta)
    sep = b"," if head else b""
    return b"{" + head + sep + b'"value":[' + b",".join(fragments) + b"]}"
