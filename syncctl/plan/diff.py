"""Attribute comparison: a cheap equality check per object first, a detailed diff only where
it fails.

At 100,000 users nearly every object is unchanged, so the planner first compares each side's
compared attributes as plain dicts (one C-level comparison, cheaper than hashing both sides)
and asks deepdiff for details only when they differ. deepdiff compares multi-valued
attributes without regard to order (``ignore_order``), so a target that returns a list in
another order is not "changed" forever.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from syncctl.model import canonical_json


def comparable(attributes: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The values of ``paths`` that are set: absent and null mean the same ("no value")."""
    get = attributes.get
    return {path: value for path in paths if (value := get(path)) is not None}


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Sorted paths whose values differ between two comparable() dicts ([] when equal)."""
    if before == after:
        return []
    from deepdiff import DeepDiff  # only for objects that differ: a no-change run never loads it

    diff = DeepDiff(dict(before), dict(after), ignore_order=True, report_repetition=False)
    return sorted(str(key) for key in diff.affected_root_keys)


def synced_digest(values: Mapping[str, Any]) -> str:
    """A short digest of an object's compared values (``comparable()`` plus the key), as
    syncctl writes them: the state keeps it per object, never the values themselves, and the
    next plan compares it with the target's values to tell target drift from an Entra change.

    Multi-valued attributes are hashed as given: a target returning a list in another order
    than syncctl wrote it reads as drift only when the values also differ from Entra's.
    """
    text = canonical_json(dict(values))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
