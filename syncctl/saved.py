"""Saved plans (``plan -o``) against the live world: which policy each entry is, whether its
changes are still exactly what a fresh plan would do, and what the safety checks say about
exactly those changes. A saved file is evidence of what was reviewed, never trusted to decide.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncctl import __version__
from syncctl.errors import StalePlanError, SyncctlError
from syncctl.plan.model import Change, Plan, PolicyPlan, Refusal
from syncctl.policy.model import Policy

STALE_LIST_LIMIT = 10


@dataclass(frozen=True, slots=True)
class SavedSelection:
    """The changes of a saved plan, taken from the fresh plan (real values), per policy."""

    changes: Mapping[str, tuple[Change, ...]]


def check_saved_policy(saved_policy: Mapping[str, Any], policy: Policy) -> None:
    """Refuse a saved plan's policy entry when the policy file changed since planning."""
    if saved_policy.get("policy_sha256") != policy.sha256:
        raise StalePlanError(
            f"Saved plan is stale: policy file {policy.path} changed since the plan was "
            "made; run plan again"
        )


def saved_policy(
    entry: Mapping[str, Any],
    *,
    given: Mapping[str, Policy] | None = None,
    plan_file: Path | None = None,
) -> Policy:
    """The policy of one entry of a saved plan: from ``given`` (policies passed after the
    plan file: they win) or else where the plan recorded its file, relative to ``plan_file``
    first, then absolute. Stale (StalePlanError) when the policy file changed since."""
    name = str(entry.get("name"))
    if given is not None:
        policy = given.get(name)
        if policy is None:
            known = ", ".join(sorted(given)) or "none"
            raise SyncctlError(
                f'the saved plan is for policy "{name}", which is not among the policies '
                f"given (found: {known}); pass its policy file or directory after the plan"
            )
    else:
        policy = _recorded_policy(entry, name, plan_file)
    check_saved_policy(entry, policy)
    return policy


def _recorded_policy(entry: Mapping[str, Any], name: str, plan_file: Path | None) -> Policy:
    from syncctl.policy import load_policies

    recorded = entry.get("policy_file") or {}
    base = Path(os.path.abspath(plan_file if plan_file is not None else ".")).parent
    candidates = [
        base / str(recorded["relative"]) if recorded.get("relative") else None,
        Path(str(recorded["absolute"])) if recorded.get("absolute") else None,
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            for policy in load_policies([candidate]):
                if policy.name == name:
                    return policy
    tried = ", ".join(str(c) for c in candidates if c is not None) or "no path recorded"
    raise SyncctlError(
        f'cannot find the policy file of policy "{name}" in this saved plan (tried {tried}); '
        "pass its policy file or directory after the plan file"
    )


def saved_policies(saved: Mapping[str, Any], policies: Sequence[Policy]) -> list[Policy]:
    """The policies a saved plan was made of (all or nothing; the CLI goes policy by policy)."""
    given = {p.name: p for p in policies}
    return [saved_policy(entry, given=given) for entry in saved.get("policies", [])]


def select_saved_changes(saved_policy: Mapping[str, Any], fresh: PolicyPlan) -> tuple[Change, ...]:
    """A saved policy entry's changes, taken from ``fresh`` (which holds the real redacted
    and deferred values), after checking that each is still exactly what a fresh plan would do.

    Stale (StalePlanError, exit 3) when any saved change is gone or differs from the fresh
    plan's change at the same address (action, attributes, before values, target version):
    the target or the source moved on since planning. Both sides are compared as the plan
    file spells them, so redacted values compare as "(redacted)".
    """
    from syncctl.plan.planfile import dumps_dict, plan_to_dict

    as_filed = Plan(policies=(fresh,), syncctl_version=__version__, created_at="")
    (fresh_dict,) = json.loads(dumps_dict(plan_to_dict(as_filed)))["policies"]
    now_changes = _by_address(fresh_dict.get("changes", []))
    fresh_objects = {c.address: c for c in fresh.changes}
    chosen: list[Change] = []
    stale: list[str] = []
    for address, change in _by_address(saved_policy.get("changes", [])).items():
        if now_changes.get(address) != change:
            stale.append(address)
        else:
            chosen.append(fresh_objects[address])
    if stale:
        shown = ", ".join(stale[:STALE_LIST_LIMIT])
        more = f" and {len(stale) - STALE_LIST_LIMIT} more" if len(stale) > STALE_LIST_LIMIT else ""
        raise StalePlanError(
            f"Saved plan is stale: {len(stale)} planned change(s) no longer match the source "
            f"or target ({shown}{more}); run plan again"
        )
    return tuple(chosen)


def select_saved(saved: Mapping[str, Any], fresh: Plan) -> SavedSelection:
    """``select_saved_changes`` for every policy of a saved plan."""
    fresh_by_name = {p.name: p for p in fresh.policies}
    selected: dict[str, tuple[Change, ...]] = {}
    for saved_policy in saved.get("policies", []):
        name = str(saved_policy["name"])
        plan = fresh_by_name.get(name)
        if plan is None:
            raise StalePlanError(f'Saved plan is stale: policy "{name}" was not planned again')
        selected[name] = select_saved_changes(saved_policy, plan)
    return SavedSelection(selected)


def selection_refusal(
    policy: Policy, fresh: PolicyPlan, changes: Sequence[Change]
) -> Refusal | None:
    """The safety checks, evaluated on exactly what is about to be applied (a subset of the
    live re-plan ``fresh``). A saved plan's own ``refused`` field is never trusted: an edited
    file must not switch a check off."""
    from syncctl.plan.safety import evaluate

    return evaluate(policy, fresh, changes)


def _by_address(changes: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c["address"]): c for c in changes}
