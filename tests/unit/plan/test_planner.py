"""The planner's rules, one behaviour per test (POLICY.md, CLI.md, brief E)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from syncctl.expressions import Deferred
from syncctl.model import RemovalReason
from syncctl.plan.model import Action, ChangeKind, Plan, Reason
from syncctl.plan.planfile import plan_to_dict
from syncctl.plan.planner import plan_policy
from syncctl.policy.model import (
    ApplyMode,
    AttributeMapping,
    DeletionAction,
    GroupDeletionAction,
    Policy,
    Threshold,
)
from syncctl.render.text import render as render_text
from tests.unit.plan.support import (
    NOW,
    actions,
    make_policy,
    plan_of,
    snapshot,
    source_group,
    source_user,
    target_group,
    target_snapshot,
    target_user,
    whole_plan,
)

ALICE = source_user("u-alice", "alice@contoso.com", displayName="Alice Adams")
BOB = source_user("u-bob", "bob@contoso.com", displayName="Bob Brown")
# Many managed users keep the percentage thresholds out of the way in rule tests.
BYSTANDERS = [source_user(f"u-{i:02}", f"user{i:02}@contoso.com") for i in range(30)]
BYSTANDER_ROWS = [
    target_user(f"t-{i:02}", f"user{i:02}@contoso.com", f"u-{i:02}", displayName=f"User{i:02}")
    for i in range(30)
]


def relaxed(**options: Any) -> Policy:
    return make_policy(
        max_deletes=Threshold(count=1000), max_disables=Threshold(count=1000), **options
    )


def test_new_user_is_created_with_every_mapped_attribute_key_first() -> None:
    plan = plan_of(make_policy(), snapshot([ALICE]), target_snapshot())
    (change,) = plan.changes
    assert (change.address, change.action, change.reason) == (
        "user/alice@contoso.com",
        Action.CREATE,
        Reason.ENTERED_SCOPE,
    )
    assert change.source_id == "u-alice" and change.target_id is None
    assert [(a.path, a.before, a.after) for a in change.attributes] == [
        ("userName", None, "alice@contoso.com"),
        ("displayName", None, "Alice Adams"),
    ]


def test_unchanged_user_gives_an_empty_plan() -> None:
    target = target_snapshot(
        [target_user("t1", "alice@contoso.com", "u-alice", displayName="Alice Adams")]
    )
    plan = plan_of(make_policy(), snapshot([ALICE]), target)
    assert plan.is_empty and not plan.errors and plan.refused is None


def test_update_lists_only_changed_attributes_with_before_and_after() -> None:
    target = target_snapshot(
        [target_user("t1", "bob@contoso.com", "u-bob", displayName="Bob", department="IT")],
    )
    plan = plan_of(
        make_policy(),
        snapshot([BOB]),
        target,
    )
    (change,) = plan.changes
    assert (change.action, change.reason, change.target_id, change.version) == (
        Action.UPDATE,
        Reason.ATTRIBUTES_CHANGED,
        "t1",
        "1",
    )
    # department is mapped and now empty in Entra: it is cleared on the target.
    assert [(a.path, a.before, a.after) for a in change.attributes] == [
        ("department", "IT", None),
        ("displayName", "Bob", "Bob Brown"),
    ]


def test_unmapped_target_attributes_are_not_compared() -> None:
    target = target_snapshot(
        [target_user("t1", "bob@contoso.com", "u-bob", displayName="Bob Brown", title="CEO")]
    )
    assert plan_of(make_policy(), snapshot([BOB]), target).is_empty


def test_on_create_mappings_are_set_on_create_and_never_updated() -> None:
    mappings = (
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("nickName", "[mailNickname]", apply=ApplyMode.ON_CREATE),
    )
    policy = make_policy(user_attributes=mappings)
    alice = source_user("u-alice", "alice@contoso.com", mailNickname="alice")
    created = plan_of(policy, snapshot([alice]), target_snapshot())
    assert ("nickName", "alice") in [(a.path, a.after) for a in created.changes[0].attributes]
    existing = target_snapshot([target_user("t1", "alice@contoso.com", "u-alice", nickName="al")])
    assert plan_of(policy, snapshot([alice]), existing).is_empty


def test_multivalued_attributes_compare_without_order() -> None:
    mappings = (
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("roles", "[roles]"),
    )
    policy = make_policy(user_attributes=mappings)
    alice = source_user("u-alice", "alice@contoso.com", roles=["a", "b"])
    same = target_snapshot([target_user("t1", "alice@contoso.com", "u-alice", roles=["b", "a"])])
    assert plan_of(policy, snapshot([alice]), same).is_empty
    other = target_snapshot([target_user("t1", "alice@contoso.com", "u-alice", roles=["a"])])
    assert actions(plan_of(policy, snapshot([alice]), other)) == [
        ("user/alice@contoso.com", "update", "attributes_changed")
    ]


def test_inactive_user_back_in_scope_is_re_enabled_with_its_attribute_changes() -> None:
    target = target_snapshot(
        [target_user("t1", "bob@contoso.com", "u-bob", active=False, displayName="Bob")]
    )
    disabled = {"u-bob": NOW - timedelta(days=3)}  # syncctl disabled it when it left scope
    (change,) = plan_of(make_policy(), snapshot([BOB]), target, disabled_at=disabled).changes
    assert (change.action, change.reason) == (Action.ENABLE, Reason.RE_ENTERED_SCOPE)
    assert [(a.path, a.after) for a in change.attributes] == [("displayName", "Bob Brown")]


@pytest.mark.parametrize(
    ("why", "reason"),
    [
        (None, Reason.OUT_OF_SCOPE),
        (RemovalReason.OUT_OF_SCOPE, Reason.OUT_OF_SCOPE),
        (RemovalReason.DISABLED, Reason.DISABLED_IN_SOURCE),
        (RemovalReason.SOFT_DELETED, Reason.SOFT_DELETED),
        (RemovalReason.HARD_DELETED, Reason.HARD_DELETED),
    ],
)
@pytest.mark.parametrize("rule", list(DeletionAction))
def test_each_removal_reason_follows_its_deletion_rule(
    why: RemovalReason | None, reason: Reason, rule: DeletionAction
) -> None:
    field = {
        RemovalReason.DISABLED: "disabled",
        RemovalReason.SOFT_DELETED: "soft_deleted",
        RemovalReason.HARD_DELETED: "hard_deleted",
    }.get(why or RemovalReason.OUT_OF_SCOPE, "out_of_scope")
    policy = relaxed(**{field: rule})
    removed = {"u-carol": why} if why else {}
    target = target_snapshot(
        [*BYSTANDER_ROWS, target_user("t-carol", "carol@contoso.com", "u-carol")]
    )
    plan = plan_of(policy, snapshot(BYSTANDERS, removed=removed), target)
    expected = {
        DeletionAction.IGNORE: [],
        DeletionAction.DISABLE: [("user/carol@contoso.com", "disable", reason.value)],
        DeletionAction.DELETE: [("user/carol@contoso.com", "delete", reason.value)],
    }[rule]
    assert actions(plan) == expected
    for change in plan.changes:
        assert (change.target_id, change.source_id, change.version) == ("t-carol", "u-carol", "1")


def test_already_disabled_user_is_not_disabled_again() -> None:
    target = target_snapshot(
        [*BYSTANDER_ROWS, target_user("t-carol", "carol@contoso.com", "u-carol", active=False)]
    )
    assert plan_of(relaxed(), snapshot(BYSTANDERS), target).is_empty


@pytest.mark.parametrize(
    ("disabled_days_ago", "deleted"), [(31, True), (30, True), (29, False), (None, False)]
)
def test_delete_after_deletes_users_disabled_long_enough(
    disabled_days_ago: int | None, deleted: bool
) -> None:
    policy = relaxed(delete_after=timedelta(days=30))
    target = target_snapshot(
        [*BYSTANDER_ROWS, target_user("t-carol", "carol@contoso.com", "u-carol", active=False)]
    )
    disabled_at = {"u-carol": NOW - timedelta(days=disabled_days_ago)} if disabled_days_ago else {}
    plan = plan_of(policy, snapshot(BYSTANDERS), target, disabled_at=disabled_at)
    expected = [("user/carol@contoso.com", "delete", "delete_after_elapsed")] if deleted else []
    assert actions(plan) == expected


def test_delete_after_does_not_apply_to_ignored_users() -> None:
    policy = relaxed(delete_after=timedelta(days=1), out_of_scope=DeletionAction.IGNORE)
    target = target_snapshot(
        [*BYSTANDER_ROWS, target_user("t-carol", "carol@contoso.com", "u-carol", active=False)]
    )
    disabled_at = {"u-carol": NOW - timedelta(days=100)}
    assert plan_of(policy, snapshot(BYSTANDERS), target, disabled_at=disabled_at).is_empty


@pytest.mark.parametrize("protect", ["CAROL@contoso.com", "u-carol"])
def test_protected_users_are_never_disabled_or_deleted(protect: str) -> None:
    policy = relaxed(protected=(protect,), hard_deleted=DeletionAction.DELETE)
    target = target_snapshot(
        [*BYSTANDER_ROWS, target_user("t-carol", "carol@contoso.com", "u-carol")]
    )
    source = snapshot(BYSTANDERS, removed={"u-carol": RemovalReason.HARD_DELETED})
    assert plan_of(policy, source, target).is_empty


def test_protected_users_in_scope_are_still_updated() -> None:
    policy = make_policy(protected=("bob@contoso.com",))
    target = target_snapshot([target_user("t1", "bob@contoso.com", "u-bob", displayName="Bob")])
    assert actions(plan_of(policy, snapshot([BOB]), target)) == [
        ("user/bob@contoso.com", "update", "attributes_changed")
    ]


def test_unmanaged_and_foreign_objects_are_listed_and_never_changed() -> None:
    target = target_snapshot(
        [
            target_user("t1", "legacy-admin", None, managed_by=None),
            target_user("t2", "other@contoso.com", "u-other", managed_by="other-policy"),
        ],
        [target_group("g1", "Legacy Group", None, managed_by=None)],
    )
    plan = plan_of(make_policy(), snapshot(), target)
    assert plan.is_empty
    assert plan.unmanaged == ("group/Legacy Group", "user/legacy-admin", "user/other@contoso.com")


def test_unmanaged_user_matching_by_username_is_adopted_case_insensitively() -> None:
    policy = make_policy(user_match=("userName",))
    target = target_snapshot(
        [
            target_user(
                "t9",
                "Alice@Contoso.com",
                None,
                managed_by=None,
                version="7",
                displayName="Alice Adams",
            )
        ]
    )
    plan = plan_of(policy, snapshot([ALICE]), target)
    (change,) = plan.changes
    assert (change.action, change.reason, change.target_id, change.source_id, change.version) == (
        Action.ADOPT,
        Reason.MATCHED_EXISTING,
        "t9",
        "u-alice",
        "7",
    )
    assert [(a.path, a.before, a.after) for a in change.attributes] == [
        ("userName", "Alice@Contoso.com", "alice@contoso.com")
    ]
    assert plan.unmanaged == ()


def test_adoption_never_takes_an_object_owned_by_another_policy() -> None:
    policy = make_policy(user_match=("userName",))
    target = target_snapshot(
        [target_user("t9", "alice@contoso.com", "u-alice", managed_by="other-policy")]
    )
    plan = plan_of(policy, snapshot([ALICE]), target)
    assert plan.is_empty
    (error,) = plan.errors
    assert error.address == "user/alice@contoso.com"
    assert 'managed by policy "other-policy"' in error.message


def test_key_collision_without_match_rule_is_an_error_not_a_create() -> None:
    target = target_snapshot([target_user("t9", "alice@contoso.com", None, managed_by=None)])
    plan = plan_of(make_policy(), snapshot([ALICE]), target)
    assert plan.is_empty
    (error,) = plan.errors
    assert error.address == "user/alice@contoso.com"
    assert error.message == (
        'userName "alice@contoso.com" conflicts with unmanaged user "alice@contoso.com"; '
        "add mappings.user.match to adopt it"
    )


def test_ambiguous_adoption_is_an_error() -> None:
    mappings = (
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("employeeNumber", "[employeeId]"),
    )
    policy = make_policy(user_attributes=mappings, user_match=("employeeNumber",))
    alice = source_user("u-alice", "alice@contoso.com", employeeId="42")
    target = target_snapshot(
        [
            target_user("t1", "a1", None, managed_by=None, employeeNumber="42"),
            target_user("t2", "a2", None, managed_by=None, employeeNumber="42"),
        ]
    )
    plan = plan_of(policy, snapshot([alice]), target)
    assert plan.is_empty
    assert "matches 2 unmanaged users" in plan.errors[0].message


def test_mapping_error_leaves_the_object_untouched_and_is_reported() -> None:
    target = target_snapshot([target_user("t1", "bob@contoso.com", "u-bob", displayName="Bob")])
    plan = plan_of(make_policy(), snapshot([ALICE, BOB]), target, fail_for=frozenset({"u-bob"}))
    assert actions(plan) == [("user/alice@contoso.com", "create", "entered_scope")]
    (error,) = plan.errors
    assert error.address == "user/bob@contoso.com"
    assert "bad index" in error.message


def test_two_entra_users_mapping_to_one_username_are_both_errors() -> None:
    twin = source_user("u-twin", "ALICE@contoso.com")
    plan = plan_of(make_policy(), snapshot([ALICE, twin]), target_snapshot())
    assert plan.is_empty
    assert len(plan.errors) == 2
    assert all("is also mapped from" in e.message for e in plan.errors)


def test_redacted_attributes_are_marked() -> None:
    mappings = (
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("employeeNumber", "Redact([employeeId])"),
    )
    alice = source_user("u-alice", "alice@contoso.com", employeeId="E-1")
    plan = plan_of(make_policy(user_attributes=mappings), snapshot([alice]), target_snapshot())
    redacted = {a.path: a.redacted for a in plan.changes[0].attributes}
    assert redacted == {"userName": False, "employeeNumber": True}


# -- groups and memberships ------------------------------------------------------------------


def test_new_group_and_its_members_are_created() -> None:
    source = snapshot(
        [ALICE, BOB], [source_group("g-admins", "Vault Admins", ("u-alice", "u-bob"))]
    )
    plan = plan_of(make_policy(), source, target_snapshot())
    assert actions(plan) == [
        ("user/alice@contoso.com", "create", "entered_scope"),
        ("user/bob@contoso.com", "create", "entered_scope"),
        ("group/Vault Admins", "create", "entered_scope"),
        ("membership/Vault Admins/alice@contoso.com", "add", "member_in_scope"),
        ("membership/Vault Admins/bob@contoso.com", "add", "member_in_scope"),
    ]
    member = plan.changes[-1]
    assert (member.kind, member.group, member.user) == (ChangeKind.MEMBERSHIP, "g-admins", "u-bob")


def test_group_without_members_in_scope_is_not_created_when_skip_empty_groups() -> None:
    source = snapshot(
        [ALICE], [source_group("g-empty", "Empty"), source_group("g-x", "Ghosts", ("u-nobody",))]
    )
    assert actions(plan_of(make_policy(), source, target_snapshot())) == [
        ("user/alice@contoso.com", "create", "entered_scope")
    ]
    created = plan_of(make_policy(skip_empty_groups=False), source, target_snapshot())
    assert [a for a in actions(created) if a[0].startswith("group/")] == [
        ("group/Empty", "create", "entered_scope"),
        ("group/Ghosts", "create", "entered_scope"),
    ]


def test_managed_group_that_became_empty_is_kept_and_emptied() -> None:
    source = snapshot([ALICE], [source_group("g1", "Vault Admins")])
    target = target_snapshot(
        [target_user("t-alice", "alice@contoso.com", "u-alice", displayName="Alice Adams")],
        [target_group("tg1", "Vault Admins", "g1")],
        {"tg1": {"t-alice"}},
    )
    assert actions(plan_of(make_policy(), source, target)) == [
        ("membership/Vault Admins/alice@contoso.com", "remove", "member_left")
    ]


@pytest.mark.parametrize(
    ("why", "reason"),
    [
        (None, "group_left_scope"),
        (RemovalReason.OUT_OF_SCOPE, "group_left_scope"),
        (RemovalReason.SOFT_DELETED, "soft_deleted"),
        (RemovalReason.HARD_DELETED, "hard_deleted"),
    ],
)
def test_managed_group_leaving_scope_is_deleted_without_membership_noise(
    why: RemovalReason | None, reason: str
) -> None:
    source = snapshot(BYSTANDERS, removed={"g1": why} if why else {})
    target = target_snapshot(BYSTANDER_ROWS, [target_group("tg1", "Old", "g1")], {"tg1": {"t-01"}})
    assert actions(plan_of(relaxed(), source, target)) == [("group/Old", "delete", reason)]


def test_group_deletion_ignore_and_protected_groups_keep_the_group() -> None:
    target = target_snapshot(BYSTANDER_ROWS, [target_group("tg1", "Old", "g1")])
    ignore = relaxed(groups=GroupDeletionAction.IGNORE)
    assert plan_of(ignore, snapshot(BYSTANDERS), target).is_empty
    protected = relaxed(protected=("Old",))
    assert plan_of(protected, snapshot(BYSTANDERS), target).is_empty


def test_disabled_user_loses_memberships_in_every_managed_group() -> None:
    source = snapshot(BYSTANDERS, [source_group("g1", "Vault Admins", ("u-01",))])
    target = target_snapshot(
        [*BYSTANDER_ROWS, target_user("t-carol", "carol@contoso.com", "u-carol")],
        [target_group("tg1", "Vault Admins", "g1"), target_group("tg2", "Left", "g2")],
        {"tg1": {"t-01", "t-carol"}, "tg2": {"t-carol"}},
    )
    policy = relaxed(groups=GroupDeletionAction.IGNORE)
    assert actions(plan_of(policy, source, target)) == [
        ("user/carol@contoso.com", "disable", "out_of_scope"),
        ("membership/Left/carol@contoso.com", "remove", "member_left"),
        ("membership/Vault Admins/carol@contoso.com", "remove", "member_left"),
    ]


def test_memberships_of_unmanaged_and_ignored_users_are_left_alone() -> None:
    source = snapshot(BYSTANDERS, [source_group("g1", "Vault Admins", ("u-01",))])
    target = target_snapshot(
        [
            *BYSTANDER_ROWS,
            target_user("t-legacy", "legacy", None, managed_by=None),
            target_user("t-carol", "carol@contoso.com", "u-carol"),
        ],
        [target_group("tg1", "Vault Admins", "g1")],
        {"tg1": {"t-01", "t-legacy", "t-carol"}},
    )
    policy = relaxed(out_of_scope=DeletionAction.IGNORE)
    assert plan_of(policy, source, target).is_empty


def test_renamed_user_appears_under_its_new_name_in_membership_addresses() -> None:
    source = snapshot([ALICE], [source_group("g1", "Vault Admins", ("u-alice",))])
    target = target_snapshot(
        [target_user("t1", "alice.old@contoso.com", "u-alice", displayName="Alice Adams")],
        [target_group("tg1", "Admins (old)", "g1")],
    )
    assert actions(plan_of(make_policy(), source, target)) == [
        ("user/alice@contoso.com", "update", "attributes_changed"),
        ("group/Vault Admins", "update", "attributes_changed"),
        ("membership/Vault Admins/alice@contoso.com", "add", "member_in_scope"),
    ]


def test_plan_carries_identity_and_fingerprints() -> None:
    source, target = snapshot([ALICE]), target_snapshot()
    plan = plan_of(make_policy(), source, target)
    assert (plan.name, plan.tenant, plan.policy_sha256) == (
        "contoso-vault",
        "contoso.onmicrosoft.com",
        "ab" * 32,
    )
    assert plan.target == {"type": "sqlite", "path": ".syncctl/contoso.db"}
    assert plan.fingerprints == {"source": source.fingerprint(), "target": target.fingerprint()}


# -- with the real expression engine (syncctl.mapping.Mapper) --------------------------------


def test_real_mapper_deferred_redacted_and_ignored_values() -> None:
    mappings = (
        AttributeMapping("userName", "ToLower([userPrincipalName])"),
        AttributeMapping("displayName", 'Join(" ", [givenName], [surname])'),
        AttributeMapping("employeeNumber", "Redact([employeeId])"),
        AttributeMapping("title", "IgnoreFlowIfNullOrEmpty([jobTitle])"),
        AttributeMapping("nickName", "Guid()", apply=ApplyMode.ON_CREATE),
    )
    policy = make_policy(user_attributes=mappings)
    alice = source_user(
        "u-alice", "Alice@Contoso.com", givenName="Alice", surname="Adams", employeeId="E1"
    )
    created = plan_policy(policy, snapshot([alice]), target_snapshot(), disabled_at={}, now=NOW)
    (change,) = created.changes
    values = {a.path: a.after for a in change.attributes}
    assert values["userName"] == "alice@contoso.com"
    assert values["displayName"] == "Alice Adams"
    assert isinstance(values["nickName"], Deferred)  # resolved by the applier, not the planner
    assert "title" not in values
    document = plan_to_dict(whole_plan(created))
    attributes = {a["path"]: a for a in document["policies"][0]["changes"][0]["attributes"]}
    assert attributes["nickName"] == {
        "path": "nickName",
        "before": None,
        "after": "(known after apply)",
        "known_after_apply": True,
    }
    assert attributes["employeeNumber"]["after"] == "(redacted)"

    # Existing user: the title the target holds is left alone (IgnoreFlowIfNullOrEmpty), the
    # on_create nickName is never compared, the redacted value is compared like any other.
    existing = target_snapshot(
        [
            target_user(
                "t1",
                "alice@contoso.com",
                "u-alice",
                displayName="Alice Adams",
                employeeNumber="E0",
                title="CTO",
                nickName="whatever",
            )
        ]
    )
    updated = plan_policy(policy, snapshot([alice]), existing, disabled_at={}, now=NOW)
    (change,) = updated.changes
    assert [(a.path, a.before, a.after, a.redacted) for a in change.attributes] == [
        ("employeeNumber", "E0", "E1", True)
    ]


def test_a_newcomer_taking_a_managed_users_name_is_the_only_error() -> None:
    twin = source_user("u-twin", "ALICE@contoso.com")
    target = target_snapshot(
        [target_user("t1", "alice@contoso.com", "u-alice", displayName="Alice Adams")]
    )
    plan = plan_of(make_policy(), snapshot([ALICE, twin]), target)
    assert plan.is_empty
    (error,) = plan.errors
    assert error.address == "user/ALICE@contoso.com"
    assert "is also mapped from Entra user u-alice" in error.message


def test_renaming_onto_another_objects_name_is_an_error_and_the_user_is_untouched() -> None:
    bob = source_user("u-bob", "carol@contoso.com", displayName="Bob")
    target = target_snapshot(
        [
            target_user("t-bob", "bob@contoso.com", "u-bob", displayName="Bob"),
            target_user("t-carol", "carol@contoso.com", None, managed_by=None),
        ],
        [target_group("tg1", "Staff", "g1")],
        {"tg1": {"t-bob"}},
    )
    plan = plan_of(make_policy(), snapshot([bob], [source_group("g1", "Staff")]), target)
    assert plan.is_empty  # not updated, not disabled, memberships kept
    assert [e.address for e in plan.errors] == ["user/carol@contoso.com"]


def test_empty_unmanaged_group_is_not_adopted_when_skip_empty_groups() -> None:
    policy = make_policy(group_match=("displayName",))
    target = target_snapshot([], [target_group("tg1", "Empty", None, managed_by=None)])
    plan = plan_of(policy, snapshot([], [source_group("g1", "Empty")]), target)
    assert plan.is_empty and plan.unmanaged == ("group/Empty",)


def test_changes_are_sorted_by_kind_then_address() -> None:
    users = [source_user(f"u{i}", f"{name}@x.com") for i, name in enumerate("zyxw")]
    groups = [source_group("g2", "B", ("u0",)), source_group("g1", "A", ("u3", "u0"))]
    plan = plan_of(make_policy(), snapshot(users, groups), target_snapshot())
    keys = [(c.kind.value, c.address) for c in plan.changes]
    order = {"user": 0, "group": 1, "membership": 2}
    assert keys == sorted(keys, key=lambda k: (order[k[0]], k[1]))
    assert [k[0] for k in keys] == ["user"] * 4 + ["group"] * 2 + ["membership"] * 3


def test_adopting_a_disabled_account_says_it_will_be_re_enabled() -> None:
    # Both targets make an adopted account active; the plan must not hide that.
    policy = make_policy(user_match=("userName",))
    target = target_snapshot(
        [target_user("t9", "alice@contoso.com", None, managed_by=None, active=False)]
    )
    plan = plan_of(policy, snapshot([ALICE]), target)
    (change,) = plan.changes
    assert (change.action, change.reason) == (Action.ADOPT, Reason.MATCHED_EXISTING_DISABLED)
    text = render_text(plan_to_dict(Plan((plan,), "0.1.0", "2026-11-22T00:00:00Z")))
    assert "which is disabled and will be re-enabled" in text
    assert "~ active" in text and "false -> true" in text
