"""Plans group memberships, once the users and groups of a policy are planned.

Only memberships between managed groups and managed (or about to be managed) users are
planned. Users that are disabled or deleted lose their memberships in managed groups; users
left alone keep theirs; a group being deleted takes its memberships with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from syncctl.plan.addresses import membership_prefix
from syncctl.plan.model import Action, Change, ChangeKind, Reason
from syncctl.plan.objects import ObjectPlanner
from syncctl.plan.unicode import printable


def plan_memberships(
    users: ObjectPlanner,
    groups: ObjectPlanner,
    in_scope_members: Mapping[str, list[str]],
    target_members: Mapping[str, frozenset[str]],
) -> list[Change]:
    user_of_target = users.target_ids()
    group_objects = {**groups.managed, **groups.adopted}
    changes: list[Change] = []

    def actual(group_id: str) -> set[str]:
        obj = group_objects.get(group_id)
        if obj is None:
            return set()
        return {
            user_of_target[t] for t in target_members.get(obj.target_id, ()) if t in user_of_target
        }

    # A user is a member of many groups: its address part is worked out once, not per
    # membership (300,000 of them in a large tenant).
    user_parts: dict[str, str] = {}

    def user_part(user_id: str) -> str:
        part = user_parts[user_id] = printable(users.final_key(user_id))
        return part

    def emit(group_id: str, user_ids: list[str], action: Action) -> None:
        if not user_ids:
            return
        prefix = membership_prefix(groups.final_key(group_id))
        reason = Reason.MEMBER_IN_SCOPE if action is Action.ADD else Reason.MEMBER_LEFT
        kind = ChangeKind.MEMBERSHIP
        changes.extend(
            [
                Change(
                    prefix + (user_parts.get(u) or user_part(u)),
                    kind,
                    action,
                    reason,
                    group=group_id,
                    user=u,
                )
                for u in user_ids
            ]
        )

    removable = users.present | users.stripped
    for group_id in sorted(groups.present):
        wanted = users.present.intersection(in_scope_members.get(group_id, ()))
        have = actual(group_id)
        emit(group_id, sorted(wanted - have), Action.ADD)
        emit(group_id, sorted((have - wanted) & removable), Action.REMOVE)
    for group_id in sorted(groups.managed):
        if group_id in groups.present or group_id in groups.untouched:
            continue
        if group_id in groups.deleted:
            continue  # deleting the group removes its memberships
        emit(group_id, sorted(actual(group_id) & users.stripped), Action.REMOVE)
    return changes
