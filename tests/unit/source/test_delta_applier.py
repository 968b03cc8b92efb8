"""DeltaApplier against the delta shapes Microsoft documents (delta-query-overview.md,
delta-query-groups.md, user-delta.md; /work/shared/reference/entra-graph.md 2.4 and
tests/fixtures/graph-published/): each test folds answers into a small slice and compares it
with the slice a full read of the changed tenant would give."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from syncctl.errors import GraphError
from syncctl.model import ObjectKind, RemovalReason
from syncctl.policy.model import GroupSelector, Policy
from syncctl.source.cache import CachedGroup, TenantCache
from syncctl.source.delta import DeltaApplier
from syncctl.source.reader import selected_properties
from tests.unit.source.policies import make_policy

PUBLISHED = Path(__file__).resolve().parents[2] / "fixtures" / "graph-published"
USER = "#microsoft.graph.user"
GROUP = "#microsoft.graph.group"

SCOPE = "5c0a0000-0000-4000-8000-000000000001"  # "Password Manager Users"
NESTED = "5c0a0000-0000-4000-8000-000000000002"  # nested in SCOPE
VAULT = "5c0a0000-0000-4000-8000-000000000003"  # "Vault Admins" (provisioned)
OTHER = "5c0a0000-0000-4000-8000-000000000004"  # a group outside the slice
ANN = "aaaa0000-0000-4000-8000-000000000001"  # direct member of SCOPE
BOB = "aaaa0000-0000-4000-8000-000000000002"  # direct member of SCOPE and of NESTED
CARL = "aaaa0000-0000-4000-8000-000000000003"  # member of NESTED only
DORA = "aaaa0000-0000-4000-8000-000000000004"  # member of VAULT only (not a candidate)
EVE = "aaaa0000-0000-4000-8000-000000000005"  # not in the slice
NEVER = "ffff0000-0000-4000-8000-000000000009"  # an id syncctl never saw

POLICY = make_policy()
USER_SELECT = sorted(selected_properties(POLICY)[ObjectKind.USER])
GROUP_SELECT = sorted(selected_properties(POLICY)[ObjectKind.GROUP])


def user(user_id: str, **changes: Any) -> dict[str, Any]:
    """A user's selected properties as Graph sends them (department never set: omitted)."""
    base: dict[str, Any] = {
        "id": user_id,
        "displayName": f"User {user_id[-1]}",
        "userPrincipalName": f"u{user_id[-1]}@contoso.test",
        "accountEnabled": True,
        "userType": "Member",
    }
    return {**base, **changes}


def attributes(raw: dict[str, Any]) -> dict[str, Any]:
    return {name: raw.get(name) for name in USER_SELECT}


def group(group_id: str, name: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": group_id,
        "displayName": name,
        "description": None,
        "groupTypes": [],
        "mailEnabled": False,
        "securityEnabled": True,
    }
    return {**base, **changes}


def group_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    return {name: raw.get(name) for name in GROUP_SELECT}


def member(object_id: str, kind: str = USER, removed: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"@odata.type": kind, "id": object_id}
    if removed:
        entry["@removed"] = {"reason": "deleted"}  # members@delta removals say "deleted"
    return entry


def slice_() -> TenantCache:
    return TenantCache(
        tenant="contoso.onmicrosoft.com",
        key="k",
        scope=(SCOPE,),
        provisioned=(VAULT,),
        users={uid: attributes(user(uid)) for uid in (ANN, BOB, CARL)},
        groups={
            SCOPE: CachedGroup(
                group_attributes(group(SCOPE, "Password Manager Users")), {ANN, BOB}, {NESTED}
            ),
            NESTED: CachedGroup({}, {BOB, CARL}),
            VAULT: CachedGroup(group_attributes(group(VAULT, "Vault Admins")), {DORA}),
        },
    )


def applier(
    cache: TenantCache, policy: Policy = POLICY, managed: tuple[str, ...] = ()
) -> DeltaApplier:
    return DeltaApplier(
        cache,
        policy.source,
        user_select=USER_SELECT,
        group_select=GROUP_SELECT,
        managed=managed,
    )


def settled(
    cache: TenantCache,
    groups: list[dict[str, Any]],
    users: list[dict[str, Any]],
    *,
    policy: Policy = POLICY,
    managed: tuple[str, ...] = (),
) -> DeltaApplier:
    """Both answers applied, users newly in scope taken from the users answer, settled."""
    folding = applier(cache, policy, managed)
    folding.apply_groups(groups)
    folding.apply_users(users)
    for user_id in folding.missing_users() & folding.result.latest.keys():
        folding.add_user(user_id, folding.result.latest[user_id])
    folding.settle()
    return folding


def published(name: str) -> list[dict[str, Any]]:
    document = json.loads((PUBLISHED / name).read_text())
    values: list[dict[str, Any]] = document["body"]["value"]
    return values


# -- objects repeated, members across entries ----------------------------------------------


def test_an_object_twice_in_a_round_last_entry_wins() -> None:
    cache = slice_()
    first, last = user(ANN, department="Sales"), user(ANN, department="Legal")
    folding = settled(cache, [], [first, last])
    assert cache.users[ANN]["department"] == "Legal"
    assert folding.result.latest[ANN]["department"] == "Legal"
    assert folding.result.changed


def test_a_removed_then_restored_user_in_one_round_stays_in_scope() -> None:
    # Graph may send an object more than once; the later entry is the current state.
    cache = slice_()
    gone = {"id": ANN, "@removed": {"reason": "changed"}}
    folding = settled(cache, [], [gone, user(ANN)], managed=(ANN,))
    assert ANN in cache.flatten().groups[SCOPE].members
    assert ANN in cache.users
    assert ANN not in cache.outside
    assert folding.result.restart is None


def test_a_groups_members_across_several_entries_are_merged() -> None:
    cache = slice_()
    entries = [
        {**group(SCOPE, "Password Manager Users"), "members@delta": [member(EVE)]},
        {**group(SCOPE, "Password Manager Users"), "members@delta": [member(ANN, removed=True)]},
        {**group(SCOPE, "Password Manager Users"), "members@delta": [member(DORA)]},
    ]
    folding = applier(cache)
    folding.apply_groups(entries)
    assert cache.groups[SCOPE].users == {BOB, EVE, DORA}
    assert folding.missing_users() == {EVE, DORA}


def test_published_changes_round_applies_to_the_published_initial_rounds() -> None:
    """The published rounds (delta-query-groups.md): TestGroup3 as the scope group, its user
    added, then the next round's removal (of an id the doc spells differently: never seen)."""
    scope = "2e5807ce-58f3-4a94-9b37-ffff2e085957"
    added = "37de1ae3-408f-4702-8636-20824abda004"
    initial = "632f6bb2-3ec8-4c1f-9073-0027a8c68593"
    cache = TenantCache(
        tenant="t",
        key="k",
        scope=(scope,),
        provisioned=(),
        users={initial: attributes(user(initial))},
        groups={scope: CachedGroup(group_attributes(group(scope, "TestGroup3")), {initial})},
    )
    policy = make_policy(scope_groups=(scope,), groups=())
    folding = settled(
        cache, published("groups-delta-next-round-changes.json"), [user(added)], policy=policy
    )
    assert cache.groups[scope].users == {initial, added}
    assert cache.groups[scope].attributes["description"] == "A test group for change tracking"
    assert folding.result.restart is None
    assert sorted(cache.users) == sorted([initial, added])


# -- @removed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("changed", RemovalReason.SOFT_DELETED), ("deleted", RemovalReason.HARD_DELETED)],
)
def test_removed_user_reason(reason: str, expected: RemovalReason) -> None:
    cache = slice_()
    folding = settled(cache, [], [{"id": BOB, "@removed": {"reason": reason}}], managed=(BOB,))
    assert cache.outside == {BOB: expected}
    assert BOB not in cache.users
    assert all(BOB not in g.users for g in cache.groups.values())
    assert folding.result.changed


def test_removed_in_the_initial_round_shape_is_taken_like_any_other() -> None:
    # user-delta.md's initial response mixes live users and @removed entries
    cache = slice_()
    items = [user(ANN, department="Ops"), {"id": CARL, "@removed": {"reason": "deleted"}}]
    settled(cache, [], items, managed=(CARL,))
    assert cache.users[ANN]["department"] == "Ops"
    assert cache.outside == {CARL: RemovalReason.HARD_DELETED}
    assert CARL not in cache.flatten().users


def test_removed_for_an_id_never_seen_changes_nothing() -> None:
    cache = slice_()
    before = copy.deepcopy(cache)
    folding = settled(
        cache,
        [{"id": NEVER, "@removed": {"reason": "deleted"}}],
        [{"id": NEVER, "@removed": {"reason": "changed"}}],
    )
    assert cache == before
    assert not folding.result.changed
    assert folding.result.restart is None


def test_removed_for_a_managed_id_never_in_the_slice_records_why() -> None:
    cache = slice_()
    settled(cache, [], [{"id": NEVER, "@removed": {"reason": "changed"}}], managed=(NEVER,))
    assert cache.outside == {NEVER: RemovalReason.SOFT_DELETED}


def test_deleted_scope_group_fails_in_one_line() -> None:
    cache = slice_()
    with pytest.raises(GraphError) as raised:
        applier(cache).apply_groups([{"id": SCOPE, "@removed": {"reason": "deleted"}}])
    message = str(raised.value)
    assert "\n" not in message
    assert SCOPE in message and "scope group" in message


def test_deleted_provisioned_group_restarts() -> None:
    folding = applier(slice_())
    folding.apply_groups([{"id": VAULT, "@removed": {"reason": "changed"}}])
    assert folding.result.restart is not None and VAULT in folding.result.restart


# -- members that are not there, not users, not in scope --------------------------------------


def test_member_that_does_not_exist_is_forgotten_like_a_full_read() -> None:
    cache = slice_()
    before = cache.flatten()
    folding = applier(cache)
    folding.apply_groups(
        [{**group(SCOPE, "Password Manager Users"), "members@delta": [member(NEVER)]}]
    )
    assert folding.missing_users() == {NEVER}
    folding.forget_user(NEVER)  # GET /users/{id} answered 404
    folding.settle()
    assert cache.flatten() == before
    assert not folding.missing_users()


@pytest.mark.parametrize(
    "kind",
    ["#microsoft.graph.device", "#microsoft.graph.servicePrincipal", "#microsoft.graph.orgContact"],
)
def test_members_of_other_types_are_ignored(kind: str) -> None:
    cache = slice_()
    before = copy.deepcopy(cache)
    entry = {**group(SCOPE, "Password Manager Users"), "members@delta": [member(NEVER, kind)]}
    removal = {**group(NESTED, "Nested"), "members@delta": [member(EVE, kind, removed=True)]}
    folding = settled(cache, [entry, removal], [])
    assert cache == before
    assert not folding.result.changed
    assert not folding.result.new_groups


def test_user_change_outside_scope_is_ignored() -> None:
    cache = slice_()
    before = copy.deepcopy(cache)
    folding = settled(
        cache,
        [{**group(OTHER, "Elsewhere"), "members@delta": [member(EVE), member(ANN)]}],
        [user(EVE, department="Sales"), user(DORA, displayName="Dora Renamed")],
    )
    assert cache == before
    assert not folding.result.changed
    assert folding.result.restart is None


def test_change_of_a_managed_user_outside_scope_updates_its_reason() -> None:
    cache = slice_()
    cache.outside[EVE] = RemovalReason.OUT_OF_SCOPE
    settled(cache, [], [user(EVE, accountEnabled=False)], managed=(EVE,))
    assert cache.outside == {EVE: RemovalReason.DISABLED}
    assert EVE not in cache.users


# -- nested groups ---------------------------------------------------------------------------


def test_nested_group_added_is_returned_to_read() -> None:
    cache = slice_()
    folding = applier(cache)
    folding.apply_groups(
        [{**group(SCOPE, "Password Manager Users"), "members@delta": [member(OTHER, GROUP)]}]
    )
    assert folding.result.new_groups == {OTHER}
    assert OTHER in cache.groups[SCOPE].groups


def test_nested_group_removed_drops_the_users_only_it_reached() -> None:
    cache = slice_()
    entry = {
        **group(SCOPE, "Password Manager Users"),
        "members@delta": [member(NESTED, GROUP, removed=True)],
    }
    folding = settled(cache, [entry], [], managed=(BOB, CARL))
    flat = cache.flatten()
    assert flat.groups[SCOPE].members == (ANN, BOB)  # BOB is a direct member too
    assert CARL not in cache.users
    assert cache.outside == {CARL: RemovalReason.OUT_OF_SCOPE}
    assert NESTED not in cache.groups
    assert folding.result.changed


def test_nested_group_ignored_when_policy_is_not_nested() -> None:
    cache = slice_()
    cache.groups[SCOPE].groups.clear()
    del cache.groups[NESTED]
    cache.users.pop(CARL)
    policy = make_policy(nested=False)
    folding = applier(cache, policy)
    folding.apply_groups(
        [{**group(SCOPE, "Password Manager Users"), "members@delta": [member(OTHER, GROUP)]}]
    )
    assert not folding.result.new_groups
    assert not cache.groups[SCOPE].groups


# -- changes that may change which groups are selected ----------------------------------------


def test_rename_of_a_selected_group_restarts_when_selected_by_name() -> None:
    folding = applier(slice_())
    folding.apply_groups([group(VAULT, "Vault Owners")])
    assert folding.result.restart is not None and "renamed" in folding.result.restart


def test_rename_of_a_group_selected_by_pattern_restarts() -> None:
    pm = "5c0a0000-0000-4000-8000-0000000000aa"
    cache = slice_()
    cache.provisioned = (pm, VAULT)
    cache.groups[pm] = CachedGroup(group_attributes(group(pm, "PM-Finance")))
    folding = applier(cache, make_policy(groups=(GroupSelector(pattern="^PM-"),)))
    folding.apply_groups([group(pm, "Finance")])
    assert folding.result.restart is not None


def test_rename_when_selected_by_id_only_is_applied_in_place() -> None:
    policy = make_policy(scope_groups=(SCOPE,), groups=(GroupSelector(id=VAULT),))
    cache = slice_()
    folding = applier(cache, policy)
    folding.apply_groups([group(VAULT, "Vault Owners")])
    assert folding.result.restart is None
    assert cache.flatten().groups[VAULT].attributes["displayName"] == "Vault Owners"


@pytest.mark.parametrize("name", ["PM-New", "vault admins"])
def test_new_group_matching_a_selector_restarts(name: str) -> None:
    folding = applier(slice_())
    folding.apply_groups([group(OTHER, name)])
    assert folding.result.restart is not None and OTHER in folding.result.restart


def test_rename_of_a_group_that_is_not_selected_is_no_change() -> None:
    cache = slice_()
    before = copy.deepcopy(cache)
    folding = settled(cache, [group(NESTED, "Renamed Nested"), group(OTHER, "Other")], [])
    assert cache == before
    assert folding.result.restart is None
    assert not folding.result.changed


def test_a_nested_group_deleted_and_restored_in_one_round_keeps_its_users() -> None:
    # An M365 group soft-deleted then restored: its parent's entry may come first, then the
    # group's @removed, then the group again; the later entry is the current state.
    cache = slice_()
    before = copy.deepcopy(cache)
    entries = [
        {**group(SCOPE, "Password Manager Users"), "members@delta": [member(NESTED, GROUP)]},
        {"id": NESTED, "@removed": {"reason": "changed"}},
        {**group(NESTED, "Nested"), "members@delta": [member(BOB), member(CARL)]},
    ]
    folding = settled(cache, entries, [])
    assert cache == before
    assert folding.result.restart is None


def test_a_group_restored_then_deleted_in_one_round_is_deleted() -> None:
    cache = slice_()
    entries = [
        {**group(NESTED, "Nested"), "members@delta": [member(CARL)]},
        {"id": NESTED, "@removed": {"reason": "deleted"}},
    ]
    settled(cache, entries, [], managed=(CARL,))
    assert NESTED not in cache.groups
    assert CARL not in cache.users
    assert cache.outside == {CARL: RemovalReason.OUT_OF_SCOPE}
