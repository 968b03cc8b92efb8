"""Plans group memberships, once the users and groups of a policy are planned.

Only memberships between managed groups and managed (or about to be managed) users are
planned. Users that are disabled or deleted lose their memberships in managed groups; users
left alone keep theirs; a group being deleted takes its memberships with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from syncctl.plan.addresses import membership_address
from syncctl.plan.model import Action, Change, ChangeKind, Reason
from syncctl.plan.objects import ObjectPlanner


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

    user_keys: dict[str, str] = {}
    group_keys: dict[str, str] = {}
    membership = ChangeKind.MEMBERSHIP
    add, remove = Action.ADD, Action.REMOVE
    in_scope, left = Reason.MEMBER_IN_SCOPE, Reason.MEMBER_LEFT

    def emit(group_id: str, user_id: str, action: Action) -> None:
        group_key = group_keys.get(group_id) or group_keys.setdefault(
            group_id, groups.final_key(group_id)
        )
        user_key = user_keys.get(user_id) or user_keys.setdefault(user_id, users.final_key(user_id))
        changes.append(
            Change(
                address=membership_address(group_key, user_key),
                kind=membership,
                action=action,
                reason=in_scope if action is add else left,
                group=group_id,
                user=user_id,
            )
        )

    removable = users.present | users.stripped
    for group_id in sorted(groups.present):
        wanted = {u for u in in_scope_members.get(group_id, ()) if u in users.present}
        have = actual(group_id)
        for user_id in sorted(wanted - have):
            emit(group_id, user_id, add)
        for user_id in sorted((have - wanted) & removable):
            emit(group_id, user_id, remove)
    for group_id in sorted(groups.managed):
        if group_id in groups.present or group_id in groups.untouched:
            continue
        if group_id in groups.deleted:
            continue  # deleting the group removes its memberships
        for user_id in sorted(actual(group_id) & users.stripped):
            emit(group_id, user_id, remove)
    return changes
