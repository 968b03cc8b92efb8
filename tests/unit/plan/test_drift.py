"""Wording that matches the cause (issue 11): drift made on the target is shown as drift.

``target_disabled``: an inactive user in scope that syncctl never disabled (no disabled_at).
``target_drift``: the target no longer holds what syncctl last wrote (``synced`` digests).
"""

from __future__ import annotations

from datetime import timedelta

from syncctl.model import SourceUser, TargetObject
from syncctl.plan.diff import synced_digest
from syncctl.plan.model import Action, Change, Reason
from syncctl.plan.planfile import plan_to_dict
from syncctl.plan.planner import plan_policy
from syncctl.render.text import render
from tests.unit.plan.support import (
    NOW,
    make_policy,
    plan_of,
    simple_mappers,
    snapshot,
    source_user,
    target_snapshot,
    target_user,
    whole_plan,
)

ANN = source_user("u-ann", "ann@contoso.com", displayName="Ann", department="Legal")
WRITTEN = {"userName": "ann@contoso.com", "displayName": "Ann", "department": "Legal"}


def row(department: str = "Legal") -> TargetObject:
    return target_user(
        "t-ann", "ann@contoso.com", "u-ann", displayName="Ann", department=department
    )


def plan_with(user: SourceUser, target_row: TargetObject, synced: dict[str, str]) -> Change:
    policy = make_policy()
    plan = plan_policy(
        policy,
        snapshot([user]),
        target_snapshot([target_row]),
        disabled_at={},
        now=NOW,
        mappers=simple_mappers(policy),
        synced=synced,
    )
    (change,) = plan.changes
    return change


def test_a_row_edited_on_the_target_is_target_drift() -> None:
    change = plan_with(ANN, row(department="Marketing"), {"u-ann": synced_digest(WRITTEN)})
    assert (change.action, change.reason) == (Action.UPDATE, Reason.TARGET_DRIFT)
    assert [(a.path, a.before, a.after) for a in change.attributes] == [
        ("department", "Marketing", "Legal")
    ]


def test_a_change_in_entra_to_an_untouched_row_is_attributes_changed() -> None:
    moved = source_user("u-ann", "ann@contoso.com", displayName="Ann", department="Sales")
    change = plan_with(moved, row(), {"u-ann": synced_digest(WRITTEN)})
    assert (change.action, change.reason) == (Action.UPDATE, Reason.ATTRIBUTES_CHANGED)


def test_without_a_record_of_what_syncctl_wrote_the_change_is_attributes_changed() -> None:
    change = plan_with(ANN, row(department="Marketing"), {})
    assert change.reason is Reason.ATTRIBUTES_CHANGED


def test_an_account_deactivated_on_the_target_while_in_scope_is_target_disabled() -> None:
    inactive = target_user(
        "t-ann", "ann@contoso.com", "u-ann", active=False, displayName="Ann", department="Legal"
    )
    plan = plan_of(make_policy(), snapshot([ANN]), target_snapshot([inactive]))
    (change,) = plan.changes
    assert (change.action, change.reason) == (Action.ENABLE, Reason.TARGET_DISABLED)
    text = render(plan_to_dict(whole_plan(plan)))
    assert "will be re-enabled (disabled on the target, still in scope)" in text


def test_an_account_syncctl_disabled_coming_back_is_re_entered_scope() -> None:
    inactive = target_user(
        "t-ann", "ann@contoso.com", "u-ann", active=False, displayName="Ann", department="Legal"
    )
    plan = plan_of(
        make_policy(),
        snapshot([ANN]),
        target_snapshot([inactive]),
        disabled_at={"u-ann": NOW - timedelta(days=2)},
    )
    (change,) = plan.changes
    assert change.reason is Reason.RE_ENTERED_SCOPE


def test_target_drift_is_worded_as_drift() -> None:
    policy = make_policy()
    plan = plan_policy(
        policy,
        snapshot([ANN]),
        target_snapshot([row(department="Marketing")]),
        disabled_at={},
        now=NOW,
        mappers=simple_mappers(policy),
        synced={"u-ann": synced_digest(WRITTEN)},
    )
    text = render(plan_to_dict(whole_plan(plan)))
    assert '# user "ann@contoso.com" will be updated in-place (changed on the target)' in text


def test_the_digest_a_change_carries_is_what_the_next_plan_reads_back() -> None:
    """Create -> the row holds what was written -> no drift; edit the row -> drift."""
    created = plan_of(make_policy(), snapshot([ANN]), target_snapshot())
    (create,) = created.changes
    assert create.synced is not None and synced_digest(create.synced) == synced_digest(WRITTEN)
    # An Entra change to the row syncctl wrote is attributed to Entra ...
    moved = source_user("u-ann", "ann@contoso.com", displayName="Ann", department="Sales")
    assert (
        plan_with(moved, row(), {"u-ann": synced_digest(create.synced)}).reason
        is Reason.ATTRIBUTES_CHANGED
    )
    # ... an edit of that row to the target.
    edited = plan_with(ANN, row(department="X"), {"u-ann": synced_digest(create.synced)})
    assert edited.reason is Reason.TARGET_DRIFT
    assert edited.synced == create.synced  # the update writes back what Entra wants
