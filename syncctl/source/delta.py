"""Applying Graph delta answers to the cached slice (pure: no I/O).

Delta answers are taken as Microsoft documents them (delta-query-overview.md,
delta-query-groups.md, user-delta.md): an object can appear more than once (later entries
win; a large group repeats with further ``members@delta`` slices), ``@removed`` reason
``changed`` is a soft delete and ``deleted`` a permanent one, properties never set are left
out (read as null, as a full read does), and unchanged selected properties are sent with
their old values, so an entry replaces what the slice knew of the object.

What the answers cannot settle here is handed back: nested groups to read in full (newly
nested under a group of the slice), users whose attributes the slice lacks (newly in scope),
or a reason to read Graph in full instead (the set of groups the policy selects may have
changed: a rename, a deleted provisioned group, a new group matching a selector).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncctl.errors import GraphError
from syncctl.model import RemovalReason
from syncctl.policy.model import Source, is_object_id
from syncctl.source.cache import CachedGroup, TenantCache

USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"


@dataclass(slots=True)
class DeltaResult:
    changed: bool = False  # the slice differs from before
    restart: str | None = None  # why Graph must be read in full instead (None: no need)
    new_groups: set[str] = field(default_factory=set)  # nested groups to read in full
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # users' newest entries
    touched: set[str] = field(default_factory=set)  # every id the answers mentioned


class DeltaApplier:
    """Folds one run's ``/groups/delta`` and ``/users/delta`` items into a TenantCache."""

    def __init__(
        self,
        cache: TenantCache,
        source: Source,
        *,
        user_select: Iterable[str],
        group_select: Iterable[str],
        managed: Iterable[str],
    ) -> None:
        self.cache = cache
        self.source = source
        self.user_select = tuple(user_select)
        self.group_select = tuple(group_select)
        self.managed = frozenset(managed)
        self.result = DeltaResult()
        references = [r for r in source.scope_groups if not is_object_id(r)]
        references += [s.name for s in source.groups if s.name is not None]
        self._names = {name.casefold() for name in references}
        self._patterns = [re.compile(s.pattern) for s in source.groups if s.pattern is not None]
        self._selected_ids = {r for r in source.scope_groups if is_object_id(r)}
        self._selected_ids.update(s.id for s in source.groups if s.id is not None)

    # -- groups --------------------------------------------------------------------------

    def apply_groups(self, items: Iterable[Mapping[str, Any]]) -> None:
        entries = list(items)
        # A group's entries repeat (member slices); a removal counts only when no live entry
        # follows it (a group deleted and restored within the round is still there).
        last = {str(item["id"]): index for index, item in enumerate(entries)}
        for index, item in enumerate(entries):
            group_id = str(item["id"])
            self.result.touched.add(group_id)
            removed = item.get("@removed")
            if removed is not None:
                if last[group_id] == index:
                    self._group_removed(group_id, _reason(removed))
                continue
            self._group_seen(group_id, item)
            members = item.get("members@delta")
            if isinstance(members, list) and group_id in self.cache.groups:
                self._members(self.cache.groups[group_id], members)

    def _group_removed(self, group_id: str, reason: RemovalReason) -> None:
        cache = self.cache
        if group_id in cache.scope:
            raise GraphError(
                f"scope group {group_id} was deleted in Entra (groups delta reports it "
                f"{'soft-deleted' if reason is RemovalReason.SOFT_DELETED else 'deleted'}); "
                "not planning from an empty scope: restore the group or change "
                "source.scope_groups",
                request="GET /groups/delta",
            )
        if group_id in cache.provisioned:
            self._restart(f"provisioned group {group_id} was deleted in Entra")
        if group_id in self.managed:
            cache.outside[group_id] = reason
            self.result.changed = True
        if cache.groups.pop(group_id, None) is not None:
            for group in cache.groups.values():
                group.groups.discard(group_id)
            self.result.changed = True

    def _group_seen(self, group_id: str, item: Mapping[str, Any]) -> None:
        cache = self.cache
        name = item.get("displayName")
        selected = group_id in cache.scope or group_id in cache.provisioned
        if not selected:
            if group_id in self._selected_ids or self._matches(name):
                self._restart(f"group {group_id} ({name!r}) may now be selected by the policy")
            if group_id in self.managed and cache.outside.get(group_id) is not (
                RemovalReason.OUT_OF_SCOPE
            ):
                cache.outside[group_id] = RemovalReason.OUT_OF_SCOPE  # restored
                self.result.changed = True
            return
        group = cache.groups[group_id]
        attributes = {n: item.get(n) for n in self.group_select}
        old_name, new_name = group.attributes.get("displayName"), attributes.get("displayName")
        if old_name != new_name and (self._matches(old_name) or self._matches(new_name)):
            # Selected by that name or a pattern: the rename can select another group, or none.
            self._restart(f"group {group_id} was renamed")
        if attributes != group.attributes:
            group.attributes = attributes
            self.result.changed = True

    def _members(self, group: CachedGroup, members: list[Any]) -> None:
        for member in members:
            if not isinstance(member, dict) or not isinstance(member.get("id"), str):
                continue
            member_id = member["id"]
            gone = "@removed" in member
            kind = member.get("@odata.type")
            self.result.touched.add(member_id)
            if kind == USER_TYPE or (kind is None and member_id in self.cache.users):
                changed = _toggle(group.users, member_id, gone)
            elif kind == GROUP_TYPE or (kind is None and member_id in self.cache.groups):
                if not self.source.nested:
                    continue  # direct members only: nested groups play no part
                changed = _toggle(group.groups, member_id, gone)
                if changed and not gone and member_id not in self.cache.groups:
                    self.result.new_groups.add(member_id)
            elif kind is None:
                if gone:
                    changed = _toggle(group.users, member_id, True)
                    changed = _toggle(group.groups, member_id, True) or changed
                else:
                    self._restart(f"a member of group without @odata.type ({member_id})")
                    changed = False
            else:
                continue  # devices, service principals, contacts: never in scope
            self.result.changed = self.result.changed or changed

    # -- users ---------------------------------------------------------------------------

    def apply_users(self, items: Iterable[Mapping[str, Any]]) -> None:
        cache = self.cache
        # A user can appear more than once in a round; only its last entry is its state (a
        # removal followed by the restored user must not drop the user's memberships).
        last = {str(item["id"]): item for item in items}
        for user_id, item in last.items():
            self.result.touched.add(user_id)
            removed = item.get("@removed")
            if removed is not None:
                self.result.latest.pop(user_id, None)
                if cache.users.pop(user_id, None) is not None:
                    self.result.changed = True
                for group in cache.groups.values():
                    if user_id in group.users:
                        group.users.discard(user_id)  # a deleted user is no one's member
                        self.result.changed = True
                if user_id in self.managed and cache.outside.get(user_id) is not (
                    reason := _reason(removed)
                ):
                    cache.outside[user_id] = reason
                    self.result.changed = True
                continue
            attributes = {n: item.get(n) for n in self.user_select}
            self.result.latest[user_id] = attributes
            if user_id in cache.users and cache.users[user_id] != attributes:
                cache.users[user_id] = attributes
                self.result.changed = True
            if user_id in cache.outside and user_id not in cache.users:
                reason = _live_reason(attributes)
                if cache.outside[user_id] is not reason:
                    cache.outside[user_id] = reason
                    self.result.changed = True

    # -- after the answers ---------------------------------------------------------------

    def settle(self) -> None:
        """Make the slice whole again once new groups and users were read: users are exactly
        the scope groups' users, groups exactly those reachable from a selected group, and
        managed ids that left carry why."""
        cache = self.cache
        reachable = cache.reachable({*cache.scope, *cache.provisioned})
        for group_id in [g for g in cache.groups if g not in reachable]:
            del cache.groups[group_id]
            self.result.changed = True
        candidates = cache.candidates()
        for user_id in [u for u in cache.users if u not in candidates]:
            attributes = cache.users.pop(user_id)
            if user_id in self.managed:
                cache.outside[user_id] = _live_reason(attributes)
            self.result.changed = True
        for object_id in [i for i in cache.outside if i in cache.users or i not in self.managed]:
            del cache.outside[object_id]
            self.result.changed = True

    def missing_users(self) -> set[str]:
        """Scope groups' users the slice has no attributes for."""
        return self.cache.candidates() - self.cache.users.keys()

    def add_user(self, user_id: str, attributes: dict[str, Any]) -> None:
        self.cache.users[user_id] = attributes
        self.result.changed = True

    def forget_user(self, user_id: str) -> None:
        """A member Graph no longer knows (404): in no group, as a full read would see."""
        for group in self.cache.groups.values():
            group.users.discard(user_id)
        self.result.changed = True

    # -- internals -----------------------------------------------------------------------

    def _matches(self, name: Any) -> bool:
        if not isinstance(name, str):
            return False
        return name.casefold() in self._names or any(p.search(name) for p in self._patterns)

    def _restart(self, why: str) -> None:
        if self.result.restart is None:
            self.result.restart = why


def _toggle(members: set[str], member_id: str, gone: bool) -> bool:
    if gone:
        if member_id in members:
            members.discard(member_id)
            return True
        return False
    if member_id in members:
        return False
    members.add(member_id)
    return True


def _reason(removed: Any) -> RemovalReason:
    """``@removed``: ``changed`` is restorable (soft delete), anything else is gone for good."""
    reason = removed.get("reason") if isinstance(removed, dict) else None
    return RemovalReason.SOFT_DELETED if reason == "changed" else RemovalReason.HARD_DELETED


def _live_reason(attributes: Mapping[str, Any]) -> RemovalReason:
    enabled = attributes.get("accountEnabled") is True
    return RemovalReason.OUT_OF_SCOPE if enabled else RemovalReason.DISABLED
