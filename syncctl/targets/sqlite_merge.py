"""How an update merges into the SQLite target's stored resource JSON (docs/targets.md,
"Updates merge"): only the attributes a plan names change; everything else stays."""

from __future__ import annotations

import copy
from typing import Any

from syncctl.model import ObjectKind
from syncctl.scimpath import to_resource

_PLACEHOLDER = "\x00syncctl-marker\x00"


def merge_resource(
    old: dict[str, Any], changes: dict[str, Any], kind: ObjectKind
) -> dict[str, Any]:
    """``old`` with the flat ``changes`` applied (a None value removes the attribute).

    Each path is turned into its resource fragment by the one path codec (``to_resource``)
    and merged leaf by leaf, so everything else in the row survives: attributes an
    application stored itself, other-typed emails, an adopted row's own data.
    """
    merged = copy.deepcopy(old)
    schemas = set(merged.get("schemas") or ())
    for path in sorted(changes):
        value = changes[path]
        fragment = to_resource({path: _PLACEHOLDER}, kind)
        _merge_fragment(merged, fragment, value)
        if value is not None:
            schemas.update(fragment["schemas"])
    core = to_resource({}, kind)["schemas"][0]
    merged["schemas"] = [core, *sorted(schemas - {core})]
    return merged


def _merge_fragment(target: dict[str, Any], fragment: dict[str, Any], value: Any) -> None:
    for key, part in fragment.items():
        if key == "schemas":
            continue
        if isinstance(part, dict):
            inner = target.get(key)
            if not isinstance(inner, dict):
                if value is None:
                    continue
                inner = target[key] = {}
            _merge_fragment(inner, part, value)
            if not inner:
                del target[key]
        elif isinstance(part, list):
            _merge_element(target, key, part[0], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _merge_element(target: dict[str, Any], key: str, pattern: dict[str, Any], value: Any) -> None:
    """One typed element of a multi-valued attribute (``emails[type eq "work"].value``)."""
    (sub,) = [k for k, v in pattern.items() if v == _PLACEHOLDER]
    selector = {k: v for k, v in pattern.items() if k != sub}
    elements = target.get(key)
    if not isinstance(elements, list):
        if value is None:
            return
        elements = target[key] = []

    def matches(element: Any) -> bool:
        return isinstance(element, dict) and all(
            str(element.get(k, "")).lower() == str(v).lower() for k, v in selector.items()
        )

    element = next((e for e in elements if matches(e)), None)
    if value is None:
        if element is not None:
            element.pop(sub, None)
            if not set(element) - set(selector) - {"primary"}:
                elements.remove(element)
        if not elements:
            del target[key]
    elif element is None:
        elements.append({**selector, sub: value})
    else:
        element[sub] = value
