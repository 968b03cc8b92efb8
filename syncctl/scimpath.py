"""Flat SCIM paths (the policy's mapping targets) <-> SCIM resource JSON (RFC 7643).

Every target speaks one schema: a mapped object is a flat ``{path: value}`` dict whose keys are
the policy's target paths (``userName``, ``name.givenName``, ``emails[type eq "work"].value``,
``department``). This module checks those paths, builds SCIM resources from them and reads
them back, so that SQLite, SCIM and plugin targets agree on what a path means.

Path grammar (a subset of RFC 7644 §3.5.2 ``PATH``)::

    [URN ":"] attr [ "[" subAttr " eq " "\"" text "\"" "]" ] [ "." subAttr ]

Attribute names are matched exactly as RFC 7643 spells them (``userName``, not ``username``),
so that the same attribute always has the same flat key; a wrong case gets a "did you mean".
Values in filters (``type eq "work"``) are compared case-insensitively when reading, as
RFC 7643 §2.4 defines ``type`` as caseExact=false.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from syncctl.model import ObjectKind

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"

_SIMPLE = None  # marker: attribute without sub-attributes

_MULTI_VALUE_SUBS = frozenset({"value", "display", "type", "primary"})
_ADDRESS_SUBS = frozenset(
    {"formatted", "streetAddress", "locality", "region", "postalCode", "country", "type", "primary"}
)
_NAME_SUBS = frozenset(
    {"formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"}
)

# Core User (RFC 7643 §4.1), without the attributes the engine owns or that are read-only.
_USER_SINGLE: dict[str, frozenset[str] | None] = {
    "userName": _SIMPLE,
    "displayName": _SIMPLE,
    "nickName": _SIMPLE,
    "profileUrl": _SIMPLE,
    "title": _SIMPLE,
    "userType": _SIMPLE,
    "preferredLanguage": _SIMPLE,
    "locale": _SIMPLE,
    "timezone": _SIMPLE,
    "name": _NAME_SUBS,
}
_USER_MULTI: dict[str, frozenset[str]] = {
    "emails": _MULTI_VALUE_SUBS,
    "phoneNumbers": _MULTI_VALUE_SUBS,
    "ims": _MULTI_VALUE_SUBS,
    "photos": _MULTI_VALUE_SUBS,
    "addresses": _ADDRESS_SUBS,
    "entitlements": _MULTI_VALUE_SUBS,
    "roles": _MULTI_VALUE_SUBS,
    "x509Certificates": _MULTI_VALUE_SUBS,
}
# Enterprise User extension (RFC 7643 §4.3). ``manager`` is a reference: its flat value is the
# manager's id (``manager.value``); ``manager.displayName`` may be mapped explicitly.
_ENTERPRISE: dict[str, frozenset[str] | None] = {
    "employeeNumber": _SIMPLE,
    "costCenter": _SIMPLE,
    "organization": _SIMPLE,
    "division": _SIMPLE,
    "department": _SIMPLE,
    "manager": frozenset({"value", "displayName"}),
}
_GROUP_SINGLE: dict[str, frozenset[str] | None] = {"displayName": _SIMPLE}

_ENGINE_OWNED = {
    "externalId": "externalId is owned by syncctl (it is the Entra object id)",
    "active": "active is owned by syncctl (it follows the deletion rules)",
    "id": "id is assigned by the target",
    "meta": "meta is read-only, maintained by the target",
    "schemas": "schemas is set by syncctl",
    "members": "members follow source.groups membership and cannot be mapped",
    "groups": "groups is read-only on users (membership is managed on groups)",
    "password": "passwords are never provisioned by attribute mappings",
}

_PATH = re.compile(
    r"""^(?:(?P<urn>urn:[^\[\]"]+):)?
    (?P<attr>[A-Za-z$][\w$-]*)
    (?:\[\s*(?P<fattr>[A-Za-z][\w$-]*)\s+eq\s+"(?P<fvalue>[^"\\]*)"\s*\])?
    (?:\.(?P<sub>[A-Za-z$][\w$-]*))?$""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Path:
    """A parsed flat path; ``schema`` is the URN the attribute lives under."""

    schema: str
    attr: str
    filter_attr: str | None
    filter_value: str | None
    sub: str | None
    core: bool  # lives at the top level of the resource (core schema), not under a URN key


@lru_cache(maxsize=4096)
def _parse(path: str) -> _Path | None:
    m = _PATH.match(path)
    if m is None:
        return None
    urn = m["urn"]
    attr, sub = m["attr"], m["sub"]
    if urn is None:
        core = attr not in _ENTERPRISE
        schema = USER_SCHEMA if core else ENTERPRISE_USER
    else:
        schema = urn
        core = urn in (USER_SCHEMA, GROUP_SCHEMA)
    if schema == ENTERPRISE_USER and attr == "manager" and sub is None:
        sub = "value"
    return _Path(schema, attr, m["fattr"], m["fvalue"], sub, core)


def _suggest(name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if name.lower() in lowered:
        return f' (did you mean "{lowered[name.lower()]}"?)'
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _check_sub(
    path: str, attr: str, subs: frozenset[str] | None, sub: str | None, multi: bool
) -> str | None:
    if subs is None:
        return None if sub is None else f'"{path}": {attr} has no sub-attribute "{sub}"'
    if sub is None:
        example = f'{attr}[type eq "work"].value' if multi else f"{attr}.{sorted(subs)[0]}"
        return f'"{path}": {attr} is complex; name a sub-attribute, e.g. {example}'
    if sub not in subs:
        return (
            f'"{path}": unknown sub-attribute "{sub}" of {attr}'
            f"{_suggest(sub, subs)}; known: {', '.join(sorted(subs))}"
        )
    return None


def validate_path(path: str, kind: ObjectKind) -> str | None:
    """None if ``path`` is a mappable target path for ``kind``, else a one-line message."""
    parsed = _parse(path)
    if parsed is None:
        return (
            f'"{path}" is not a SCIM attribute path (expected e.g. userName, name.givenName, '
            'emails[type eq "work"].value or an enterprise attribute such as department)'
        )
    attr, sub = parsed.attr, parsed.sub
    if attr in _ENGINE_OWNED and parsed.core:
        return f'"{path}" cannot be mapped: {_ENGINE_OWNED[attr]}'
    if kind is ObjectKind.GROUP:
        if parsed.schema in (USER_SCHEMA, ENTERPRISE_USER) and parsed.core is False:
            return f'"{path}": the enterprise User extension does not apply to groups'
        if parsed.schema == USER_SCHEMA and path.startswith("urn:"):
            return f'"{path}": the core User schema does not apply to groups'
        if not parsed.core and parsed.schema != GROUP_SCHEMA:
            return _check_extension(path, parsed, "Group")
        if parsed.filter_attr is not None:
            return f'"{path}": group attributes are not multi-valued'
        if attr not in _GROUP_SINGLE:
            return f'"{path}": unknown SCIM group attribute{_suggest(attr, _GROUP_SINGLE)}'
        return _check_sub(path, attr, _GROUP_SINGLE[attr], sub, multi=False)
    if parsed.schema == GROUP_SCHEMA:
        return f'"{path}": the core Group schema does not apply to users'
    if parsed.schema == ENTERPRISE_USER:
        if attr not in _ENTERPRISE:
            return (
                f'"{path}": unknown enterprise User attribute{_suggest(attr, _ENTERPRISE)}'
                f"; known: {', '.join(sorted(_ENTERPRISE))}"
            )
        if parsed.filter_attr is not None:
            return f'"{path}": {attr} is not multi-valued'
        return _check_sub(path, attr, _ENTERPRISE[attr], sub, multi=False)
    if not parsed.core:
        return _check_extension(path, parsed, "User")
    if attr in _USER_MULTI:
        if parsed.filter_attr is None:
            return (
                f'"{path}": {attr} is multi-valued; select one value with a filter, '
                f'e.g. {attr}[type eq "work"].{"value" if attr != "addresses" else "locality"}'
            )
        if parsed.filter_attr not in _USER_MULTI[attr]:
            return f'"{path}": cannot filter {attr} on "{parsed.filter_attr}"'
        if sub == parsed.filter_attr:
            return f'"{path}": {sub} is fixed by the filter and cannot be mapped'
        return _check_sub(path, attr, _USER_MULTI[attr], sub, multi=True)
    if parsed.filter_attr is not None:
        return f'"{path}": {attr} is not multi-valued'
    if attr not in _USER_SINGLE:
        known = [*_USER_SINGLE, *_USER_MULTI, *_ENTERPRISE, *_ENGINE_OWNED]
        return f'"{path}": unknown SCIM user attribute{_suggest(attr, known)}'
    return _check_sub(path, attr, _USER_SINGLE[attr], sub, multi=False)


def _check_extension(path: str, parsed: _Path, resource: str) -> str | None:
    """Custom schema extensions (``urn:...:<Resource>:attr``): simple or one sub-attribute."""
    if not parsed.schema.endswith(f":{resource}"):
        return f'"{path}": extension schema "{parsed.schema}" is not a {resource} extension'
    if parsed.filter_attr is not None:
        return f'"{path}": filtered paths are only supported for core multi-valued attributes'
    return None


def _ci_get(obj: Mapping[str, Any], name: str) -> Any:
    """RFC 7643 §2.1: attribute names are case-insensitive when reading a server's answer."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _require(path: str) -> _Path:
    parsed = _parse(path)
    if parsed is None:
        raise ValueError(f'"{path}" is not a SCIM attribute path')
    return parsed


def to_resource(flat: Mapping[str, Any], kind: ObjectKind) -> dict[str, Any]:
    """The SCIM resource for a flat object; null values are left out.

    Several paths into one multi-valued element (``addresses[type eq "work"].locality`` and
    ``.postalCode``) build one element. Output is deterministic: keys are visited sorted.
    No id, externalId or active: the caller adds those.
    """
    core = GROUP_SCHEMA if kind is ObjectKind.GROUP else USER_SCHEMA
    resource: dict[str, Any] = {"schemas": [core]}
    extensions: set[str] = set()
    for path in sorted(flat):
        value = flat[path]
        if value is None:
            continue
        parsed = _require(path)
        if parsed.core:
            container = resource
        else:
            container = resource.setdefault(parsed.schema, {})
            extensions.add(parsed.schema)
        if parsed.filter_attr is not None:
            elements: list[dict[str, Any]] = container.setdefault(parsed.attr, [])
            element = next(
                (e for e in elements if e.get(parsed.filter_attr) == parsed.filter_value), None
            )
            if element is None:
                element = {parsed.filter_attr: parsed.filter_value}
                elements.append(element)
            element[parsed.sub or "value"] = value
        elif parsed.sub is not None:
            container.setdefault(parsed.attr, {})[parsed.sub] = value
        else:
            container[parsed.attr] = value
    resource["schemas"] = [core, *sorted(extensions)]
    return resource


def _read(resource: Mapping[str, Any], parsed: _Path) -> Any:
    container: Any = resource if parsed.core else _ci_get(resource, parsed.schema)
    if not isinstance(container, Mapping):
        return None
    value = _ci_get(container, parsed.attr)
    if parsed.filter_attr is not None:
        if not isinstance(value, list):
            return None
        wanted = (parsed.filter_value or "").lower()
        matches = [
            e
            for e in value
            if isinstance(e, Mapping)
            and str(_ci_get(e, parsed.filter_attr) or "").lower() == wanted
        ]
        if not matches:
            return None
        # Servers may return several elements of one type; the primary one is the one we set.
        element = next((e for e in matches if _ci_get(e, "primary") is True), matches[0])
        return _ci_get(element, parsed.sub or "value")
    if parsed.sub is not None:
        if isinstance(value, Mapping):
            return _ci_get(value, parsed.sub)
        # Some servers flatten manager to its id string.
        if parsed.attr == "manager" and parsed.sub == "value" and isinstance(value, str):
            return value
        return None
    return value


def from_resource(resource: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """Flat values for exactly ``paths``; attributes absent or null in ``resource`` are omitted."""
    flat: dict[str, Any] = {}
    for path in paths:
        value = _read(resource, _require(path))
        if value is not None:
            flat[path] = value
    return flat


def patch_path(path: str) -> str:
    """The RFC 7644 §3.5.2 PATCH ``path`` for a flat path.

    Enterprise short names become ``URN:attr`` (``manager`` -> ``URN:manager.value``, so the
    PATCH value is the plain id string); core and full-URN paths are already valid PATCH paths.
    """
    parsed = _require(path)
    if parsed.core:
        return path
    sub = f".{parsed.sub}" if parsed.sub else ""
    return f"{parsed.schema}:{parsed.attr}{sub}"
