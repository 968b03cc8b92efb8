"""Safety checks: refuse plans that would disable or delete too much at once.

A refused plan is still a complete plan (people need to see what it would do); the CLI turns
``PolicyPlan.refused`` into exit 3 unless ``--allow-mass-delete``.

Counting rules (POLICY.md leaves them to us):
- ``max_deletes`` limits deletes of users and groups together, as a count or a percentage of
  the objects this policy manages (users + groups);
- ``max_disables`` limits disables (users only), relative to the managed users;
- ``all_managed``: when at least two managed users are active and the plan would disable or
  delete every one of them, the plan is refused whatever the thresholds. That is the
  signature of a broken source (a renamed scope group, an empty read), not of offboarding.
  A single managed user is exempt, so a one-person policy can still offboard that person.

The counts come from the plan (``PolicyPlan.managed``), so ``evaluate`` can re-check any
subset of a plan's changes, e.g. the selection of a saved plan taken from the live re-plan:
a saved plan file never decides whether it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from syncctl.plan.model import Action, Change, ChangeKind, ManagedCounts, PolicyPlan, Refusal
from syncctl.policy.model import Deletion, Policy

__all__ = ["ALL_MANAGED_MINIMUM", "ManagedCounts", "check_safety", "evaluate"]

ALL_MANAGED_MINIMUM = 2


def evaluate(policy: Policy, plan: PolicyPlan, changes: Iterable[Change]) -> Refusal | None:
    """The refusal of ``changes`` (any subset of ``plan.changes``) under ``policy.deletion``,
    measured against the managed objects ``plan`` was made from; None when every check
    passes. ``plan`` must be a plan of ``policy`` (the live one, not a saved file)."""
    return check_safety(tuple(changes), policy.deletion, plan.managed)


def check_safety(
    changes: tuple[Change, ...], deletion: Deletion, managed: ManagedCounts
) -> Refusal | None:
    """The first failing check in order all_managed, max_deletes, max_disables, or None."""
    # One pass over the (up to 400,000) changes picks the few that every check counts.
    removals = [c for c in changes if c.action is Action.DELETE or c.action is Action.DISABLE]
    deletes = sum(
        1 for c in removals if c.action is Action.DELETE and c.kind is not ChangeKind.MEMBERSHIP
    )
    disables = sum(1 for c in removals if c.action is Action.DISABLE)
    removed_active = {
        c.source_id
        for c in removals
        if c.kind is ChangeKind.USER and c.source_id in managed.active_user_ids
    }
    active = len(managed.active_user_ids)
    if active >= ALL_MANAGED_MINIMUM and len(removed_active) == active:
        return Refusal(
            check="all_managed",
            limit=active - 1,
            planned=active,
            message=(
                f"the plan would disable or delete all {active} active managed users; "
                "check the source (scope groups, filters)"
            ),
        )
    delete_limit = deletion.max_deletes.limit(managed.users + managed.groups)
    if deletes > delete_limit:
        return Refusal(
            check="max_deletes",
            limit=delete_limit,
            planned=deletes,
            message=(
                f"the plan would delete {deletes} objects, over deletion.max_deletes "
                f"({deletion.max_deletes}: {delete_limit} of "
                f"{managed.users + managed.groups} managed)"
            ),
        )
    disable_limit = deletion.max_disables.limit(managed.users)
    if disables > disable_limit:
        return Refusal(
            check="max_disables",
            limit=disable_limit,
            planned=disables,
            message=(
                f"the plan would disable {disables} users, over deletion.max_disables "
                f"({deletion.max_disables}: {disable_limit} of {managed.users} managed)"
            ),
        )
    return None
