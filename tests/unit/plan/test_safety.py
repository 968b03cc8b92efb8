"""Mass-deletion safety checks: refused plans are complete plans with a Refusal."""

from __future__ import annotations

import pytest

from syncctl.model import RemovalReason, SourceSnapshot, TargetSnapshot
from syncctl.plan.model import Refusal
from syncctl.plan.safety import evaluate
from syncctl.policy.model import DeletionAction, Threshold
from tests.unit.plan.support import (
    make_policy,
    plan_of,
    snapshot,
    source_group,
    source_user,
    target_group,
    target_snapshot,
    target_user,
)


def _tenant(
    managed: int, leaving: int, *, removed: RemovalReason | None = None
) -> tuple[SourceSnapshot, TargetSnapshot]:
    """``managed`` managed users, the last ``leaving`` of them gone from the source."""
    users = [source_user(f"u{i:03}", f"user{i:03}@contoso.com") for i in range(managed)]
    rows = [
        target_user(f"t{i:03}", f"user{i:03}@contoso.com", f"u{i:03}", displayName=f"User{i:03}")
        for i in range(managed)
    ]
    kept = users[: managed - leaving]
    gone = {u.id: removed for u in users[managed - leaving :]} if removed else {}
    return snapshot(kept, removed=gone), target_snapshot(rows)


@pytest.mark.parametrize(
    ("threshold", "leaving", "refused"),
    [
        (Threshold(count=3), 3, False),
        (Threshold(count=3), 4, True),
        (Threshold(percent=10), 10, False),  # 10% of 100 managed
        (Threshold(percent=10), 11, True),
        (Threshold(percent=2.5), 2, False),  # floor(2.5) = 2
        (Threshold(percent=2.5), 3, True),
    ],
)
def test_max_disables(threshold: Threshold, leaving: int, refused: bool) -> None:
    source, target = _tenant(100, leaving)
    plan = plan_of(make_policy(max_disables=threshold), source, target)
    assert len(plan.changes) == leaving  # refused or not, the plan shows everything
    if refused:
        assert plan.refused is not None
        assert (plan.refused.check, plan.refused.planned) == ("max_disables", leaving)
        assert plan.refused.limit == threshold.limit(100)
        assert "deletion.max_disables" in plan.refused.message
    else:
        assert plan.refused is None


def test_max_deletes_counts_users_and_groups_against_all_managed_objects() -> None:
    source, target = _tenant(18, 1, removed=RemovalReason.HARD_DELETED)
    target = target_snapshot(
        target.users, [target_group("tg1", "Gone", "g1"), target_group("tg2", "Kept", "g2")]
    )
    source = snapshot(
        list(source.users.values()), [source_group("g2", "Kept", ("u000",))], source.removed
    )
    # 18 users + 2 groups = 20 managed; 10% -> 2 deletes allowed: 1 user + 1 group.
    ok = plan_of(make_policy(max_deletes=Threshold(percent=10)), source, target)
    assert ok.refused is None and ok.summary["delete"] == 2
    strict = plan_of(make_policy(max_deletes=Threshold(count=1)), source, target)
    assert strict.refused == Refusal(
        "max_deletes",
        1,
        2,
        "the plan would delete 2 objects, over deletion.max_deletes (1: 1 of 20 managed)",
    )


def test_disabling_every_managed_user_is_refused_whatever_the_thresholds() -> None:
    source, target = _tenant(5, 5)
    policy = make_policy(max_disables=Threshold(count=1000), max_deletes=Threshold(count=1000))
    plan = plan_of(policy, source, target)
    assert plan.refused is not None and plan.refused.check == "all_managed"
    assert plan.refused.planned == 5
    assert "all 5 active managed users" in plan.refused.message


def test_all_managed_counts_deletes_too_and_ignores_already_inactive_users() -> None:
    source, target = _tenant(3, 3, removed=RemovalReason.HARD_DELETED)
    inactive = target_user("t-x", "x@contoso.com", "u-x", active=False)
    target = target_snapshot([*target.users, inactive])
    policy = make_policy(
        max_deletes=Threshold(count=1000),
        hard_deleted=DeletionAction.DELETE,
        out_of_scope=DeletionAction.IGNORE,
    )
    refused = plan_of(policy, source, target).refused
    assert refused is not None and refused.check == "all_managed"


def test_a_single_managed_user_can_be_offboarded() -> None:
    source, target = _tenant(1, 1)
    policy = make_policy(max_disables=Threshold(count=1))
    plan = plan_of(policy, source, target)
    assert plan.refused is None and plan.summary["disable"] == 1


def test_one_user_staying_is_enough_to_pass_all_managed() -> None:
    source, target = _tenant(5, 4)
    policy = make_policy(max_disables=Threshold(count=1000))
    assert plan_of(policy, source, target).refused is None


@pytest.mark.parametrize(
    ("threshold", "managed", "limit"),
    [
        (Threshold(percent=10), 5, 1),  # a small directory can still offboard one person
        (Threshold(percent=10), 0, 1),
        (Threshold(percent=10), 25, 2),
        (Threshold(percent=0), 50, 0),  # an explicit 0% means none
        (Threshold(count=0), 50, 0),
    ],
)
def test_percentage_limits_allow_at_least_one(
    threshold: Threshold, managed: int, limit: int
) -> None:
    assert threshold.limit(managed) == limit


def test_evaluate_rechecks_any_subset_against_the_plans_managed_counts() -> None:
    """What ``apply PLANFILE`` needs: the refusal of the saved selection, computed from the
    live re-plan, whatever the saved file says about ``refused``."""
    source, target = _tenant(10, 4)
    policy = make_policy(max_disables=Threshold(count=2))
    plan = plan_of(policy, source, target)
    assert plan.refused is not None and plan.managed.users == 10
    assert evaluate(policy, plan, plan.changes) == plan.refused
    refusal = evaluate(policy, plan, plan.changes[:3])
    assert refusal is not None and (refusal.check, refusal.planned) == ("max_disables", 3)
    assert evaluate(policy, plan, plan.changes[:2]) is None
    assert evaluate(policy, plan, ()) is None


def test_evaluate_keeps_the_all_managed_check_for_a_selection() -> None:
    source, target = _tenant(3, 3)
    policy = make_policy(max_disables=Threshold(count=100))
    plan = plan_of(policy, source, target)
    refusal = evaluate(policy, plan, plan.changes)
    assert refusal is not None and refusal.check == "all_managed"
    assert evaluate(policy, plan, plan.changes[:2]) is None
