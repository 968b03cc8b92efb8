"""Scope resolution: which users and groups of a tenant slice a policy puts in scope (pure).

A *slice* is a SourceSnapshot holding candidate users (everyone in the scope groups, guests,
disabled users and all), the scope groups and the selectable groups with their user members.
The Graph reader builds one from Graph; a snapshot file is one. Both then go through the same
functions here, so offline plans and online plans cannot disagree about scope.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncctl.errors import SyncctlError
from syncctl.model import RemovalReason, SourceGroup, SourceSnapshot, SourceUser
from syncctl.policy.model import FilterClause, GroupSelector, Policy, Source, is_object_id

ErrorFactory = Callable[[str], SyncctlError]


@dataclass(frozen=True, slots=True)
class GroupRef:
    """What scope resolution needs to know about a group to select it."""

    id: str
    display_name: str


def match_group_name(name: str, groups: Iterable[GroupRef], error: ErrorFactory) -> str:
    """The id of the one group whose displayName is ``name`` (case-insensitive, as Graph's
    ``eq`` on displayName is). Display names are not unique in Entra, so zero or several
    matches are an error listing the candidates, never a silent pick or an empty group."""
    wanted = name.casefold()
    matches = sorted((g for g in groups if g.display_name.casefold() == wanted), key=_ref_key)
    if len(matches) == 1:
        return matches[0].id
    if not matches:
        raise error(f'no group is named "{name}"')
    listed = ", ".join(f'{g.id} ("{g.display_name}")' for g in matches)
    raise error(f'group name "{name}" matches {len(matches)} groups: {listed}; use an object id')


def select_groups(
    selectors: Iterable[GroupSelector], groups: Iterable[GroupRef], error: ErrorFactory
) -> list[str]:
    """Ids of the groups ``source.groups`` selects, sorted; an id or name that resolves to
    nothing is an error, a regex that matches nothing is not (it is a pattern)."""
    known = list(groups)
    by_id = {g.id: g for g in known}
    chosen: set[str] = set()
    for selector in selectors:
        if selector.id is not None:
            if selector.id not in by_id:
                raise error(f"group {selector.id} does not exist")
            chosen.add(selector.id)
        elif selector.name is not None:
            chosen.add(match_group_name(selector.name, known, error))
        else:
            assert selector.pattern is not None
            pattern = re.compile(selector.pattern)
            chosen.update(g.id for g in known if pattern.search(g.display_name))
    return sorted(chosen)


def resolve_scope_group(reference: str, groups: Iterable[GroupRef], error: ErrorFactory) -> str:
    known = list(groups)
    if is_object_id(reference):
        if reference not in {g.id for g in known}:
            raise error(f"scope group {reference} does not exist")
        return reference
    return match_group_name(reference, known, error)


def is_guest(attributes: Mapping[str, Any]) -> bool:
    return attributes.get("userType") == "Guest"


def is_enabled(attributes: Mapping[str, Any]) -> bool:
    # Only an explicit true counts: a missing value must never let a disabled user through.
    return attributes.get("accountEnabled") is True


def compile_scoping_filters(
    filters: tuple[tuple[FilterClause, ...], ...],
) -> Callable[[Mapping[str, Any]], bool]:
    if not filters:
        return lambda _attributes: True
    # Looked up at run time: the expressions engine is a sibling package (no import cycle,
    # and offline reads without filters never load it).
    compile_filters = importlib.import_module("syncctl.expressions").compile_filters
    compiled: Callable[[Mapping[str, Any]], bool] = compile_filters(filters)
    return compiled


def user_in_scope(
    source: Source, attributes: Mapping[str, Any], passes: Callable[[Mapping[str, Any]], bool]
) -> bool:
    if is_guest(attributes) and not source.include_guests:
        return False
    if not is_enabled(attributes) and not source.include_disabled:
        return False
    return passes(attributes)


def group_refs(snapshot: SourceSnapshot) -> list[GroupRef]:
    return sorted(
        (
            GroupRef(id=g.id, display_name=str(g.attributes.get("displayName") or ""))
            for g in snapshot.groups.values()
        ),
        key=_ref_key,
    )


def in_scope(
    policy: Policy, tenant_slice: SourceSnapshot, error: ErrorFactory
) -> tuple[dict[str, SourceUser], dict[str, SourceGroup]]:
    """In-scope users and provisioned groups (members limited to in-scope users)."""
    refs = group_refs(tenant_slice)
    scope_ids = sorted({resolve_scope_group(r, refs, error) for r in policy.source.scope_groups})
    candidates: set[str] = set()
    for group_id in scope_ids:
        candidates.update(tenant_slice.groups[group_id].members)
    passes = compile_scoping_filters(policy.source.filters)
    users = {
        user_id: tenant_slice.users[user_id]
        for user_id in sorted(candidates)
        if user_id in tenant_slice.users
        and user_in_scope(policy.source, tenant_slice.users[user_id].attributes, passes)
    }
    groups: dict[str, SourceGroup] = {}
    for group_id in select_groups(policy.source.groups, refs, error):
        group = tenant_slice.groups[group_id]
        members = tuple(sorted(m for m in set(group.members) if m in users))
        groups[group_id] = SourceGroup(id=group_id, attributes=group.attributes, members=members)
    return users, groups


def offline_removals(
    tenant_slice: SourceSnapshot, object_ids: Collection[str]
) -> dict[str, RemovalReason]:
    """Why each of ``object_ids`` (managed, not in scope) left, from what the file records.

    Ids the file does not mention at all are out_of_scope: a snapshot cannot prove a deletion
    it did not record (documented in docs/source.md)."""
    reasons: dict[str, RemovalReason] = {}
    for object_id in sorted(object_ids):
        if object_id in tenant_slice.removed:
            reasons[object_id] = tenant_slice.removed[object_id]
        elif object_id in tenant_slice.users and not is_enabled(
            tenant_slice.users[object_id].attributes
        ):
            reasons[object_id] = RemovalReason.DISABLED
        else:
            reasons[object_id] = RemovalReason.OUT_OF_SCOPE
    return reasons


def evaluate_offline(
    policy: Policy, tenant_slice: SourceSnapshot, managed_ids: Collection[str], error: ErrorFactory
) -> SourceSnapshot:
    users, groups = in_scope(policy, tenant_slice, error)
    gone = {i for i in managed_ids if i not in users and i not in groups}
    return SourceSnapshot(
        tenant=tenant_slice.tenant,
        users=users,
        groups=groups,
        removed=offline_removals(tenant_slice, gone),
    )


def _ref_key(ref: GroupRef) -> tuple[str, str]:
    return (ref.display_name.casefold(), ref.id)
