"""Pure helpers for SCIM resources and responses (RFC 7643/7644) used by the SCIM target:
error details, versions, ids from Location headers, and the resource surgery of the PUT
fallback. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from syncctl.model import TargetObject, fingerprint


def error_detail(response: httpx.Response) -> str:
    """A one-line reason from a SCIM error body (RFC 7644 §3.12), without echoing secrets."""
    try:
        body = response.json()
    except ValueError:
        return f"status {response.status_code}"
    if not isinstance(body, dict):
        return f"status {response.status_code}"
    parts = [f"status {response.status_code}"]
    if body.get("scimType"):
        parts.append(str(body["scimType"]))
    detail = str(body.get("detail") or "").splitlines()[0:1]
    if detail:
        parts.append(detail[0][:200])
    return ": ".join(parts)


def resource_version(resource: Mapping[str, Any], response: httpx.Response | None = None) -> str:
    meta = resource.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("version"), str):
        return str(meta["version"])
    if response is not None and response.headers.get("ETag"):
        return response.headers["ETag"]
    # No ETags: a content hash still changes whenever the object does.
    return "sha256:" + fingerprint({k: v for k, v in resource.items() if k != "meta"})[:32]


def last_segment(location: str) -> str | None:
    """The id at the end of a resource URL (``.../Users/<id>``)."""
    location = location.rstrip("/")
    return location.rsplit("/", 1)[-1] or None if location else None


def remove_path(resource: dict[str, Any], path: str) -> None:
    """Drop one PATCH-style path (``attr``, ``attr.sub``, ``attr[type eq "x"].value``,
    ``URN:attr[.sub]``) from a resource about to be PUT."""
    container: Any = resource
    if path.startswith("urn:"):
        urn, _, path = path.rpartition(":")
        container = resource.get(urn)
    if not isinstance(container, dict):
        return
    if "[" in path:
        name, _, rest = path.partition("[")
        quoted = rest.split('"')
        element_type = quoted[1].lower() if len(quoted) >= 3 else None
        elements = container.get(name)
        if isinstance(elements, list):
            container[name] = [
                e
                for e in elements
                if not (isinstance(e, dict) and str(e.get("type", "")).lower() == element_type)
            ]
        return
    attr, _, sub = path.partition(".")
    if not sub:
        container.pop(attr, None)
    elif isinstance(container.get(attr), dict):
        container[attr].pop(sub, None)


def matches(obj: TargetObject, key: str, wanted: Mapping[str, Any]) -> bool:
    """``match`` semantics of a SCIM ``eq`` filter: case-insensitive on the key attribute
    (userName and displayName are caseExact=false in RFC 7643)."""
    for path, value in wanted.items():
        actual = obj.key if path == key else obj.attributes.get(path)
        if path == key and isinstance(actual, str) and isinstance(value, str):
            if actual.casefold() != value.casefold():
                return False
        elif actual != value:
            return False
    return True


def merge_elements(current: list[Any], wanted: list[Any]) -> list[Any]:
    """Multi-valued attributes for PUT: the wanted elements replace those of the same type.

    Untyped elements are replaced too: servers that drop ``type`` (django-scim2 keeps one
    primary email) store what syncctl wrote without it. Primary stays where it was."""
    types = {e.get("type") for e in wanted if isinstance(e, dict)}
    kept: list[Any] = []
    replaced: list[Any] = []
    for element in current:
        typed = isinstance(element, dict) and element.get("type")
        (kept if typed and element.get("type") not in types else replaced).append(element)
    merged = [dict(e) if isinstance(e, dict) else e for e in wanted]
    if merged and any(isinstance(e, dict) and e.get("primary") for e in replaced):
        merged[0]["primary"] = True
    return [*kept, *merged]
