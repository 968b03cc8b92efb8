"""Plain data shared by every layer: what the source holds and what the target holds.

No I/O and no imports from the rest of syncctl, so the planner can depend on it alone.

Attribute conventions:
- Source objects carry Microsoft Graph property names and JSON values exactly as Graph returns
  them (``userPrincipalName``, ``accountEnabled``, ``groupTypes`` ...).
- Target objects carry *flat SCIM paths* as keys (``userName``, ``name.givenName``,
  ``emails[type eq "work"].value``, enterprise attributes by short name such as
  ``department``), the same keys the policy's ``mappings.*.attributes`` use. Targets convert
  between this flat form and their own storage (see ``syncctl.scimpath``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ObjectKind(StrEnum):
    USER = "user"
    GROUP = "group"


class RemovalReason(StrEnum):
    """Why an object the target holds is no longer wanted, in precedence order (first wins)."""

    HARD_DELETED = "hard_deleted"  # gone from Entra for good
    SOFT_DELETED = "soft_deleted"  # in Entra's deleted items (restorable)
    DISABLED = "disabled"  # accountEnabled is false
    OUT_OF_SCOPE = "out_of_scope"  # still in Entra, but outside scope groups / filters


@dataclass(frozen=True, slots=True)
class SourceUser:
    id: str  # Entra object id
    attributes: Mapping[str, Any]  # selected Graph properties (includes "id")


@dataclass(frozen=True, slots=True)
class SourceGroup:
    id: str
    attributes: Mapping[str, Any]
    members: tuple[str, ...] = ()  # sorted Entra ids of in-scope users (flattened if nested)


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """The in-scope slice of an Entra tenant, as the planner needs it.

    ``users`` are already filtered (scope groups, guests, disabled, scoping filters);
    ``groups`` are the groups to provision, members limited to in-scope users. ``removed``
    explains, for Entra ids the target manages but that are not in scope, why they left.
    An id the target manages that is in none of the three maps is treated as out of scope.
    """

    tenant: str
    users: Mapping[str, SourceUser]
    groups: Mapping[str, SourceGroup]
    removed: Mapping[str, RemovalReason] = field(default_factory=dict)

    def fingerprint(self) -> str:
        return fingerprint(
            {
                "users": {k: self.users[k].attributes for k in sorted(self.users)},
                "groups": {
                    k: [self.groups[k].attributes, self.groups[k].members]
                    for k in sorted(self.groups)
                },
                "removed": {k: str(self.removed[k]) for k in sorted(self.removed)},
            }
        )


@dataclass(frozen=True, slots=True)
class TargetObject:
    """One user or group as the target holds it."""

    kind: ObjectKind
    target_id: str  # the target's own id (SQLite uuid, SCIM id)
    external_id: str | None  # Entra object id when syncctl manages it
    key: str  # userName for users, displayName for groups
    active: bool  # groups are always active
    attributes: Mapping[str, Any]  # flat SCIM paths -> values
    managed_by: str | None  # name of the owning policy; None: unmanaged, never touched
    version: str  # opaque: changes on every write (stale-plan checks, SCIM If-Match)


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    users: tuple[TargetObject, ...]
    groups: tuple[TargetObject, ...]
    members: Mapping[str, frozenset[str]]  # group target_id -> user target_ids

    def fingerprint(self) -> str:
        return fingerprint(
            {
                "users": sorted([u.target_id, u.version] for u in self.users),
                "groups": sorted([g.target_id, g.version] for g in self.groups),
                "members": {g: sorted(m) for g, m in sorted(self.members.items())},
            }
        )


def canonical_json(value: Any) -> str:
    """The one JSON spelling used for hashes and golden files: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(value: Any) -> str:
    # surrogatepass: a lone UTF-16 surrogate from Graph or a snapshot ("\ud800") is data to
    # hash like any other (the planner reports it per object), not a reason to fail the
    # plan. Valid text encodes exactly as plain UTF-8, so no existing fingerprint changes.
    return hashlib.sha256(canonical_json(value).encode("utf-8", "surrogatepass")).hexdigest()
