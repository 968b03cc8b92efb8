"""Property tests of scope resolution on arbitrary tenant slices."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.errors import SnapshotError
from syncctl.model import RemovalReason, SourceGroup, SourceSnapshot, SourceUser
from syncctl.policy.model import GroupSelector
from syncctl.source.scope import evaluate_offline
from tests.unit.source.policies import make_policy

USER_IDS = [f"u{i}" for i in range(12)]


@st.composite
def slices(draw: st.DrawFn) -> SourceSnapshot:
    users = {}
    for user_id in draw(st.lists(st.sampled_from(USER_IDS), unique=True)):
        attributes: dict[str, Any] = {
            "id": user_id,
            "userType": draw(st.sampled_from(["Member", "Guest", None])),
            "accountEnabled": draw(st.sampled_from([True, False, None])),
        }
        users[user_id] = SourceUser(user_id, attributes)
    groups = {}
    for name in ("Scope", "PM-A", "PM-B", "Other"):
        members = draw(st.lists(st.sampled_from(USER_IDS), unique=True))
        groups[f"g-{name}"] = SourceGroup(
            f"g-{name}", {"id": f"g-{name}", "displayName": name}, tuple(sorted(members))
        )
    removed = {
        i: draw(st.sampled_from(list(RemovalReason)))
        for i in draw(st.lists(st.sampled_from(["gone1", "gone2"]), unique=True))
    }
    return SourceSnapshot("t", users, groups, removed)


@settings(max_examples=100, deadline=None)
@given(
    slices(),
    st.booleans(),
    st.booleans(),
    st.lists(st.sampled_from([*USER_IDS, "g-PM-A", "gone1", "gone2", "x"]), unique=True),
)
def test_scope_rules_hold_on_any_slice(
    tenant_slice: SourceSnapshot, guests: bool, disabled: bool, managed: list[str]
) -> None:
    policy = make_policy(
        scope_groups=("scope",),  # case-insensitive, as Graph's eq on displayName
        include_guests=guests,
        include_disabled=disabled,
        groups=(GroupSelector(pattern="^PM-"),),
    )
    result = evaluate_offline(policy, tenant_slice, managed, SnapshotError)
    users = tenant_slice.users
    expected = {
        u
        for u in tenant_slice.groups["g-Scope"].members
        if u in users
        and (guests or users[u].attributes["userType"] != "Guest")
        and (disabled or users[u].attributes["accountEnabled"] is True)
    }
    assert set(result.users) == expected
    assert set(result.groups) == {"g-PM-A", "g-PM-B"}
    for group in result.groups.values():
        assert set(group.members) == set(tenant_slice.groups[group.id].members) & expected
        assert list(group.members) == sorted(group.members)
    # Every managed id out of scope gets exactly one reason; in-scope ids never do.
    assert set(result.removed) == {m for m in managed if m not in expected and m != "g-PM-A"}
    for object_id, reason in result.removed.items():
        if object_id in tenant_slice.removed:
            assert reason == tenant_slice.removed[object_id]
        elif object_id in users and users[object_id].attributes["accountEnabled"] is not True:
            assert reason == RemovalReason.DISABLED
        else:
            assert reason == RemovalReason.OUT_OF_SCOPE
