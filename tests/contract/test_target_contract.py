"""The contract every target honours (targets/base.py), run against each target kind.

Each test states a promise the engine relies on: reads give back what was written (flat SCIM
paths), writes are idempotent so a crashed apply can simply be run again, versions protect
against overwriting concurrent edits, objects owned by someone else are never touched, and a
change marker (when the target has one) proves that nothing changed.
"""

from __future__ import annotations

from typing import Any

from syncctl.model import ObjectKind, TargetObject, TargetSnapshot
from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, Reason
from syncctl.targets.base import Outcome, OutcomeStatus, Target, change_marker

OWNER = "contract"
ALICE = "11111111-0000-0000-0000-000000000001"
BOB = "11111111-0000-0000-0000-000000000002"
ADMINS = "22222222-0000-0000-0000-000000000001"

ALICE_ATTRS = {
    "userName": "alice@contoso.com",
    "displayName": "Alice Adams",
    "name.givenName": "Alice",
    "name.familyName": "Adams",
    'emails[type eq "work"].value': "alice@contoso.com",
    "department": "Finance",
}
BOB_ATTRS = {"userName": "bob@contoso.com", "displayName": "Bob Brown"}


def create(kind: ChangeKind, entra_id: str, attrs: dict[str, Any]) -> Change:
    key = attrs["userName" if kind is ChangeKind.USER else "displayName"]
    return Change(
        address=f"{kind}/{key}",
        kind=kind,
        action=Action.CREATE,
        reason=Reason.ENTERED_SCOPE,
        source_id=entra_id,
        attributes=tuple(AttributeChange(p, None, v) for p, v in sorted(attrs.items())),
    )


def change(
    obj: TargetObject, action: Action, attrs: dict[str, Any] | None = None, **kw: Any
) -> Change:
    kind = ChangeKind.USER if obj.kind is ObjectKind.USER else ChangeKind.GROUP
    return Change(
        address=f"{kind}/{obj.key}",
        kind=kind,
        action=action,
        reason=Reason.ATTRIBUTES_CHANGED,
        source_id=obj.external_id,
        target_id=obj.target_id,
        attributes=tuple(
            AttributeChange(p, obj.attributes.get(p), v) for p, v in sorted((attrs or {}).items())
        ),
        version=kw.get("version", obj.version),
    )


def member(action: Action, group: str, user: str) -> Change:
    return Change(
        address=f"membership/{group}/{user}",
        kind=ChangeKind.MEMBERSHIP,
        action=action,
        reason=Reason.MEMBER_IN_SCOPE,
        group=group,
        user=user,
    )


def read(target: Target, known: tuple[str, ...] = (ALICE, BOB, ADMINS)) -> TargetSnapshot:
    return target.read(OWNER, known)


def user(snapshot: TargetSnapshot, entra_id: str) -> TargetObject:
    (found,) = [u for u in snapshot.users if u.external_id == entra_id]
    return found


def group(snapshot: TargetSnapshot, entra_id: str) -> TargetObject:
    (found,) = [g for g in snapshot.groups if g.external_id == entra_id]
    return found


def statuses(outcomes: list[Outcome]) -> list[OutcomeStatus]:
    return [o.status for o in outcomes]


def test_capabilities_are_usable(target: Target) -> None:
    caps = target.capabilities()
    assert caps.max_batch >= 1
    assert caps.versions


def test_empty_target_reads_empty(target: Target) -> None:
    snapshot = read(target)
    assert snapshot.users == ()
    assert snapshot.groups == ()
    assert not any(snapshot.members.values())


def test_created_user_reads_back_as_written(target: Target) -> None:
    (outcome,) = target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED
    assert outcome.target_id
    alice = user(read(target), ALICE)
    assert alice.target_id == outcome.target_id
    assert alice.key == "alice@contoso.com"
    assert alice.active is True
    assert alice.managed_by == OWNER
    assert {p: alice.attributes.get(p) for p in ALICE_ATTRS} == ALICE_ATTRS


def test_create_is_idempotent(target: Target) -> None:
    first = target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    again = target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    assert again[0].status in (OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED)
    assert again[0].target_id == first[0].target_id
    snapshot = read(target)
    assert [u.external_id for u in snapshot.users] == [ALICE]


def test_one_outcome_per_change_in_order(target: Target) -> None:
    changes = [
        create(ChangeKind.USER, ALICE, ALICE_ATTRS),
        member(Action.ADD, ADMINS, ALICE),  # the group does not exist: fails alone
        create(ChangeKind.USER, BOB, BOB_ATTRS),
    ]
    outcomes = target.apply(changes, OWNER)
    assert [o.address for o in outcomes] == [c.address for c in changes]
    assert statuses(outcomes) == [
        OutcomeStatus.APPLIED,
        OutcomeStatus.FAILED,
        OutcomeStatus.APPLIED,
    ]
    assert outcomes[1].message
    assert sorted(u.external_id or "" for u in read(target).users) == [ALICE, BOB]


def test_update_changes_only_named_attributes_and_bumps_version(target: Target) -> None:
    target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    before = user(read(target), ALICE)
    outcomes = target.apply(
        [change(before, Action.UPDATE, {"department": "Legal", "name.givenName": None})], OWNER
    )
    assert statuses(outcomes) == [OutcomeStatus.APPLIED]
    after = user(read(target), ALICE)
    assert after.attributes["department"] == "Legal"
    assert "name.givenName" not in after.attributes
    assert after.attributes["name.familyName"] == "Adams"
    assert after.attributes['emails[type eq "work"].value'] == "alice@contoso.com"
    assert after.version != before.version


def test_renaming_the_key_renames_the_object(target: Target) -> None:
    target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    before = user(read(target), ALICE)
    target.apply([change(before, Action.UPDATE, {"userName": "alice.adams@contoso.com"})], OWNER)
    after = user(read(target), ALICE)
    assert after.key == "alice.adams@contoso.com"
    assert after.attributes["userName"] == "alice.adams@contoso.com"


def test_stale_version_is_not_overwritten(target: Target) -> None:
    target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    planned = user(read(target), ALICE)
    target.apply([change(planned, Action.UPDATE, {"department": "Legal"})], OWNER)
    outcomes = target.apply([change(planned, Action.UPDATE, {"department": "Sales"})], OWNER)
    assert statuses(outcomes) == [OutcomeStatus.STALE]
    assert user(read(target), ALICE).attributes["department"] == "Legal"


def test_disable_then_enable(target: Target) -> None:
    target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    alice = user(read(target), ALICE)
    assert statuses(target.apply([change(alice, Action.DISABLE)], OWNER)) == [OutcomeStatus.APPLIED]
    disabled = user(read(target), ALICE)
    assert disabled.active is False
    # Disabling again (a re-run) is not a failure.
    again = target.apply([change(disabled, Action.DISABLE)], OWNER)
    assert again[0].status in (OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED)
    target.apply([change(user(read(target), ALICE), Action.ENABLE)], OWNER)
    assert user(read(target), ALICE).active is True


def test_delete_is_idempotent(target: Target) -> None:
    target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    alice = user(read(target), ALICE)
    assert statuses(target.apply([change(alice, Action.DELETE)], OWNER)) == [OutcomeStatus.APPLIED]
    assert read(target).users == ()
    gone = target.apply([change(alice, Action.DELETE)], OWNER)
    assert gone[0].status in (OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED)


def test_memberships_add_and_remove_idempotently(target: Target) -> None:
    target.apply(
        [
            create(ChangeKind.GROUP, ADMINS, {"displayName": "Vault Admins"}),
            create(ChangeKind.USER, ALICE, ALICE_ATTRS),
            create(ChangeKind.USER, BOB, BOB_ATTRS),
        ],
        OWNER,
    )
    adds = [member(Action.ADD, ADMINS, ALICE), member(Action.ADD, ADMINS, BOB)]
    assert statuses(target.apply(adds, OWNER)) == [OutcomeStatus.APPLIED] * 2
    again = target.apply(adds, OWNER)
    assert all(s in (OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED) for s in statuses(again))
    snapshot = read(target)
    admins = group(snapshot, ADMINS)
    ids = {user(snapshot, ALICE).target_id, user(snapshot, BOB).target_id}
    assert snapshot.members[admins.target_id] == ids

    removal = [member(Action.REMOVE, ADMINS, BOB)]
    assert statuses(target.apply(removal, OWNER)) == [OutcomeStatus.APPLIED]
    again = target.apply(removal, OWNER)
    assert again[0].status in (OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED)
    snapshot = read(target)
    assert snapshot.members[admins.target_id] == {user(snapshot, ALICE).target_id}


def test_deleting_a_group_drops_its_memberships(target: Target) -> None:
    target.apply(
        [
            create(ChangeKind.GROUP, ADMINS, {"displayName": "Vault Admins"}),
            create(ChangeKind.USER, ALICE, ALICE_ATTRS),
        ],
        OWNER,
    )
    target.apply([member(Action.ADD, ADMINS, ALICE)], OWNER)
    admins = group(read(target), ADMINS)
    assert statuses(target.apply([change(admins, Action.DELETE)], OWNER)) == [OutcomeStatus.APPLIED]
    snapshot = read(target)
    assert snapshot.groups == ()
    assert not any(snapshot.members.values())
    assert user(snapshot, ALICE).active is True  # users are not collateral damage


def test_objects_of_another_owner_are_never_touched(target: Target) -> None:
    target.apply([create(ChangeKind.USER, BOB, BOB_ATTRS)], "someone-else")
    snapshot = target.read(OWNER, (ALICE,))
    (bob,) = snapshot.users
    assert bob.managed_by != OWNER
    for action, attrs in (
        (Action.UPDATE, {"displayName": "Hijacked"}),
        (Action.DISABLE, None),
        (Action.DELETE, None),
    ):
        outcomes = target.apply([change(bob, action, attrs)], OWNER)
        assert statuses(outcomes) == [OutcomeStatus.FAILED], action
    (after,) = target.read(OWNER, (ALICE,)).users
    assert after.attributes.get("displayName") == "Bob Brown"
    assert after.active is True


def test_change_marker_stays_equal_while_nothing_is_applied(target: Target) -> None:
    target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    first = change_marker(target)
    read(target)  # reading is not a change
    target.apply([], OWNER)
    assert change_marker(target) == first
    assert change_marker(target) == first


def test_change_marker_moves_after_an_apply_that_changed_something(target: Target) -> None:
    target.apply([create(ChangeKind.USER, ALICE, ALICE_ATTRS)], OWNER)
    alice = user(read(target), ALICE)
    markers = [change_marker(target)]
    for batch in (
        [change(alice, Action.UPDATE, {"department": "Legal"})],
        [create(ChangeKind.GROUP, ADMINS, {"displayName": "Vault Admins"})],
        [member(Action.ADD, ADMINS, ALICE)],
        [member(Action.REMOVE, ADMINS, ALICE)],
        [change(alice, Action.DELETE, version=None)],  # the update moved its version on
    ):
        assert statuses(target.apply(batch, OWNER)) == [OutcomeStatus.APPLIED], batch
        markers.append(change_marker(target))
    # None is "cannot tell" (the caller reads); a marker, once changed, never comes back.
    told = [m for m in markers if m is not None]
    assert len(set(told)) == len(told), markers


def test_a_plugin_written_before_change_markers_reads_as_cannot_tell() -> None:
    class OldPlugin:  # the Protocol as it was: no change_marker
        def close(self) -> None: ...

    class OddPlugin(OldPlugin):
        def change_marker(self) -> object:
            return 42  # not a token: treated as "cannot tell", never compared

    assert change_marker(OldPlugin()) is None  # type: ignore[arg-type]
    assert change_marker(OddPlugin()) is None  # type: ignore[arg-type]
