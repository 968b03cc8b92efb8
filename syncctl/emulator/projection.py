"""Turning directory objects into the JSON Graph returns, with a cache of encoded fragments.

Serving 100,000 users must cost well under the client's parse. Building and encoding a page in
one go (one orjson call per page, not per object) is the cheap way to do it cold; recently
served pages are kept encoded and reused while none of their objects changed.
"""

from __future__ import annotations

import functools
import itertools
import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
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


@functools.lru_cache(maxsize=256)
def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        name = names[0]
        return lambda obj: (obj[name],)
    getter: Callable[[Mapping[str, Any]], tuple[Any, ...]] = operator.itemgetter(*names)
    return getter


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
    try:
        values = _getter(names)(obj)  # C-speed path: the object has every shown property
    except KeyError:
        values = tuple(obj.get(name) for name in names)
    shown = dict(zip(names, values, strict=True))
    if "passwordProfile" in shown:
        shown["passwordProfile"] = None  # write-only: Graph never returns the password
    if always_id and "id" not in shown:
        shown = {"id": obj["id"], **shown}
    if with_type:
        shown = {"@odata.type": ODATA_TYPE[kind], **shown}
    return shown


def project_limited(
    obj: Mapping[str, Any], kind: str, select: Sequence[str] | None
) -> dict[str, Any]:
    """A member the app may not read (permissions-overview.md, "Limited information returned
    for inaccessible member objects"): Microsoft's example answer gives ``@odata.type`` and
    ``id``, and every other shown property as null."""
    names = _shown(kind, None if select is None else tuple(select))
    return {
        "@odata.type": ODATA_TYPE[kind],
        "id": obj["id"],
        **dict.fromkeys((n for n in names if n != "id"), None),
    }


def project_many(
    objects: Sequence[Mapping[str, Any]],
    kind: str,
    select: Sequence[str] | None,
    *,
    with_type: bool = False,
) -> list[dict[str, Any]]:
    """``project`` for a page of objects of one kind, with no Python-level work per object
    on the common path (this is what keeps serving 100,000 users cheaper than parsing them)."""
    names = _shown(kind, None if select is None else tuple(select))
    if with_type or "passwordProfile" in names:
        return [project(obj, kind, select, with_type=with_type) for obj in objects]
    try:
        rows = list(map(_getter(names), objects))
    except KeyError:
        return [project(obj, kind, select) for obj in objects]
    return list(map(dict, map(zip, itertools.repeat(names), rows)))


# select, with_type, with @odata.id, kinds shown with limited information, ids
PageKey = tuple[tuple[str, ...] | None, bool, bool, frozenset[str], tuple[str, ...]]

# The directory's own type names, as @odata.id spells them (directoryobject-get.md:
# ".../directoryObjects/{id}/Microsoft.DirectoryServices.User").
_DIRECTORY_TYPE = {
    "user": "User",
    "group": "Group",
    "device": "Device",
    "servicePrincipal": "ServicePrincipal",
    "orgContact": "Contact",
}


def with_odata_id(item: dict[str, Any], directory_url: str, kind: str) -> dict[str, Any]:
    """``item`` with the ``@odata.id`` Graph gives a directory object read from the directory
    (``{directory_url}/{id}/Microsoft.DirectoryServices.{Type}``), after its ``@odata.type``."""
    link = f"{directory_url}/{item['id']}/Microsoft.DirectoryServices.{_DIRECTORY_TYPE[kind]}"
    annotations = {k: v for k, v in item.items() if k == "@odata.type"}
    rest = {k: v for k, v in item.items() if k != "@odata.type"}
    return {**annotations, "@odata.id": link, **rest}


class PageCache:
    """Encoded ``value`` arrays of recent pages. A page is reused only for the same ids,
    selection and object versions, so a second read of an unchanged tenant costs a join."""

    def __init__(self, limit: int = 400) -> None:
        self._pages: OrderedDict[PageKey, tuple[tuple[int | None, ...], bytes]] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: PageKey, versions: tuple[int | None, ...]) -> bytes | None:
        with self._lock:
            found = self._pages.get(key)
            if found is None or found[0] != versions:
                return None
            self._pages.move_to_end(key)
            return found[1]

    def put(self, key: PageKey, versions: tuple[int | None, ...], encoded: bytes) -> None:
        with self._lock:
            self._pages[key] = (versions, encoded)
            self._pages.move_to_end(key)
            while len(self._pages) > self._limit:
                self._pages.popitem(last=False)


def page_body(meta: Sequence[tuple[str, Any]], value: bytes) -> bytes:
    """``{meta..., "value": value}`` around an already encoded array."""
    head = b",".join(encode_json(k) + b":" + encode_json(v) for k, v in meta)
    sep = b"," if head else b""
    return b"{" + head + sep + b'"value":' + value + b"}"
