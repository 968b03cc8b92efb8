"""Ownership is never silently lost.

A policy's state says which target objects it manages. When that state is gone (a CI runner or
pod that starts without files, a deleted directory) while the target still holds what the
policy provisioned, a plan would see those objects as unmanaged and leave them alone for good:
offboarding would silently stop. So a missing or empty state is compared with the target
before anything is planned:

- a target that marks ownership itself (SQLite's ``managed_by``) proves it: rows that name
  this policy are this policy's;
- elsewhere (SCIM) an object is this policy's to claim when its ``externalId`` is an object
  id of this tenant (in scope, or proven live or soft-deleted by Graph) and no other policy's
  state in the same backend claims it.

``plan`` and ``apply`` refuse when they find such objects; ``syncctl state recover`` claims
exactly them. An externalId Graph answers 404 for cannot be told from another tenant's id and
is never claimed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from syncctl.model import ObjectKind, RemovalReason, SourceSnapshot, TargetObject, TargetSnapshot
from syncctl.policy.model import is_object_id

# How a claimed object is known to be this tenant's.
_PROVEN_REMOVALS = (RemovalReason.OUT_OF_SCOPE, RemovalReason.DISABLED, RemovalReason.SOFT_DELETED)


@dataclass(frozen=True, slots=True)
class Claim:
    kind: ObjectKind
    key: str  # userName or displayName on the target
    entra_id: str
    target_id: str

    def describe(self) -> str:
        return f"{self.kind.value} {self.key} (Entra id {self.entra_id})"


def candidates(
    snapshot: TargetSnapshot,
    owner: str,
    *,
    marks_ownership: bool,
    claimed_elsewhere: Collection[str],
) -> dict[str, TargetObject]:
    """Target objects (by Entra id) this policy may own although its state does not say so."""
    found: dict[str, TargetObject] = {}
    for obj in (*snapshot.users, *snapshot.groups):
        entra_id = obj.external_id
        if entra_id is None:
            continue
        if marks_ownership:
            if obj.managed_by == owner:
                found[entra_id] = obj
        elif (
            obj.managed_by is None and is_object_id(entra_id) and entra_id not in claimed_elsewhere
        ):
            found[entra_id] = obj
    return found


def proven_claims(
    found: Mapping[str, TargetObject], source: SourceSnapshot, *, marks_ownership: bool
) -> list[Claim]:
    """The candidates that are this policy's, sorted; ``source`` was read with their ids."""
    claims = []
    for entra_id, obj in found.items():
        in_tenant = (
            entra_id in source.users
            or entra_id in source.groups
            or source.removed.get(entra_id) in _PROVEN_REMOVALS
        )
        if marks_ownership or in_tenant:
            claims.append(Claim(obj.kind, obj.key, entra_id, obj.target_id))
    return sorted(claims, key=lambda c: (c.kind.value, c.key.casefold(), c.entra_id))


def lost_state_message(policy_file: str, location: str, claims: list[Claim]) -> str:
    shown = ", ".join(c.describe() for c in claims[:3])
    more = f" and {len(claims) - 3} more" if len(claims) > 3 else ""
    return (
        f"the state ({location}) is missing or empty, but the target holds "
        f"{len(claims)} objects this policy owns: {shown}{more}. Without the state syncctl "
        "cannot tell what it manages, and users who leave scope would never be offboarded; "
        "nothing planned. Restore the state, or claim them with: "
        f"syncctl state recover {policy_file}"
    )


def managed_on_target(snapshot: TargetSnapshot, owner: str) -> frozenset[str]:
    """The Entra ids of the target objects ``owner`` manages (the target's own record)."""
    return frozenset(
        o.external_id
        for o in (*snapshot.users, *snapshot.groups)
        if o.managed_by == owner and o.external_id is not None
    )


def only_managed(source: SourceSnapshot, managed_ids: frozenset[str]) -> SourceSnapshot:
    """Ids looked up only to tell whose they are: the planner sees the managed ids alone."""
    if source.removed.keys() <= managed_ids:
        return source
    return replace(source, removed={k: v for k, v in source.removed.items() if k in managed_ids})
