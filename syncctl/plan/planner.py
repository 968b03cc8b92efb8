"""The planner: policy + source snapshot + target snapshot -> PolicyPlan.

Pure: no I/O, no clock (``now`` is passed in), no randomness. Every collection it emits is
sorted, so the same inputs give the same plan.

Rules the contract (POLICY.md, CLI.md) leaves open, decided here and documented in
docs/plans.md:
- An object owned by another policy counts as unmanaged for this one (listed, never touched,
  never adopted).
- ``adopt`` makes an object managed, brings its compared attributes in line and leaves it
  active; ``on_create`` mappings are not applied to an adopted object (syncctl did not create
  it).
- ``skip_empty_groups`` only stops a group from being *created* (or adopted); a group syncctl
  already manages is kept and synced even when it has no members in scope.
- A user that is disabled or deleted loses its memberships in managed groups; users left alone
  (``ignore`` rule, ``protected``, mapping errors) keep theirs. Memberships of a group that is
  being deleted are not listed (the delete removes them).
- Keys (userName, group displayName) are compared after Unicode normalisation and case
  folding (``syncctl.plan.unicode.norm_key``): NFC and NFD "josé" are one name. A desired
  object whose key is taken by another target object it cannot adopt is an error, never a
  doomed create; two desired objects with one key are both errors (unless one of them already
  holds the key on the target: then only the newcomer is).
- A mapped value holding a lone UTF-16 surrogate is an error of that object alone.
- Drift: an inactive user in scope that syncctl never disabled (no ``disabled_at``) is
  ``target_disabled``; an update of an object whose target values no longer match what
  syncctl last wrote (``synced``) is ``target_drift``. Without a record for the object the
  planner cannot tell, and says ``attributes_changed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from syncctl.model import ObjectKind, SourceSnapshot, TargetSnapshot
from syncctl.plan.memberships import plan_memberships
from syncctl.plan.model import Change, ManagedCounts, PolicyPlan
from syncctl.plan.objects import MappedObjectLike, ObjectMapper, ObjectPlanner
from syncctl.plan.safety import check_safety
from syncctl.plan.unicode import norm_key
from syncctl.plan.writeback import EntraAccount, plan_writeback
from syncctl.policy.model import Policy, ScimTarget, SqliteTarget
from syncctl.secrethash import PasswordSet

__all__ = ["MappedObjectLike", "Mappers", "ObjectMapper", "plan_policy", "target_description"]


@dataclass(frozen=True, slots=True)
class Mappers:
    user: ObjectMapper
    group: ObjectMapper


def default_mappers(policy: Policy) -> Mappers:
    from syncctl.mapping import Mapper

    return Mappers(
        user=Mapper(policy.name, policy.mappings.user, ObjectKind.USER),
        group=Mapper(policy.name, policy.mappings.group, ObjectKind.GROUP),
    )


def plan_policy(
    policy: Policy,
    source: SourceSnapshot,
    target: TargetSnapshot,
    *,
    disabled_at: Mapping[str, datetime],
    now: datetime,
    mappers: Mappers | None = None,
    synced: Mapping[str, str] | None = None,
    accounts: Sequence[EntraAccount] = (),
    passwords: Mapping[str, PasswordSet] | None = None,
) -> PolicyPlan:
    """The changes that make ``target`` hold what ``policy`` wants of ``source``.

    ``disabled_at``: Entra id -> when syncctl disabled that user (from the state), for
    ``deletion.delete_after``, and to tell a user back in scope from one disabled on the
    target. ``synced``: Entra id -> ``Change.synced`` of the last change syncctl applied to
    that object (from the state), to tell target drift from Entra changes; objects without
    one read as changed in Entra. ``mappers`` replaces the policy's compiled mappings (tests).
    ``accounts`` (the users of ``writeback.passwords``, as Graph answered) and ``passwords``
    (what syncctl set, from the state) feed the writeback changes (``syncctl.plan.writeback``).
    """
    mappers = mappers or default_mappers(policy)
    protected = frozenset(norm_key(p) for p in policy.deletion.protected)
    synced = synced or {}

    users = ObjectPlanner(
        policy, ObjectKind.USER, target.users, protected, disabled_at=disabled_at, synced=synced
    )
    users.map_desired(source.users.items(), mappers.user)
    users.plan_desired()
    users.plan_user_removals(source.removed, disabled_at, now)

    groups = ObjectPlanner(policy, ObjectKind.GROUP, target.groups, protected, synced=synced)
    in_scope = source.users.keys()
    in_scope_members = {
        gid: list(filter(in_scope.__contains__, group.members))
        for gid, group in source.groups.items()
    }
    skipped = (
        {gid for gid, members in in_scope_members.items() if not members}
        if policy.source.skip_empty_groups
        else set()
    )
    groups.map_desired(source.groups.items(), mappers.group)
    groups.plan_desired(skip_unless_managed=skipped)
    groups.plan_group_removals(source.removed)

    memberships = plan_memberships(users, groups, in_scope_members, target.members)
    written, writeback_errors = plan_writeback(
        policy, source.users, target.users, accounts=accounts, passwords=passwords
    )

    # Users, groups, memberships, then Entra users (each list holds one kind), by address.
    changes = (
        *_in_order(users.changes),
        *_in_order(groups.changes),
        *_in_order(memberships),
        *_in_order(written),
    )
    managed = ManagedCounts(
        users=len(users.managed),
        groups=len(groups.managed),
        active_user_ids=frozenset(i for i, o in users.managed.items() if o.active),
    )
    refused = check_safety(changes, policy.deletion, managed)
    return PolicyPlan(
        name=policy.name,
        policy_sha256=policy.sha256,
        tenant=policy.tenant.id,
        target=target_description(policy),
        fingerprints={"source": source.fingerprint(), "target": target.fingerprint()},
        changes=changes,
        unmanaged=tuple(sorted({*users.unmanaged_addresses(), *groups.unmanaged_addresses()})),
        refused=refused,
        errors=tuple(
            sorted(
                [*users.errors, *groups.errors, *writeback_errors],
                key=lambda e: (e.address, e.message),
            )
        ),
        managed=managed,
    )


def target_description(policy: Policy) -> dict[str, Any]:
    """Where the plan applies, without secrets (tokens, plugin options)."""
    config = policy.target
    if isinstance(config, SqliteTarget):
        return {"type": config.type, "path": str(config.path)}
    if isinstance(config, ScimTarget):
        return {"type": config.type, "url": config.url}
    return {"type": config.type}


def _in_order(changes: list[Change]) -> list[Change]:
    """``changes`` by (address, action). Two stable sorts give that order (by action, then
    by address) at a third of the cost of one sort on a tuple key: plain string keys take
    CPython's fast comparison, and the action sort is nearly free (one action per group of
    changes). Action is a StrEnum, so its members order as their values."""
    return sorted(sorted(changes, key=_ACTION), key=_ADDRESS)


_ACTION = attrgetter("action")
_ADDRESS = attrgetter("address")
