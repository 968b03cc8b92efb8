"""The plan: pure data. Renderers read it; the applier acts on ``action``, never on ``reason``.

In memory a Change holds real attribute values (the applier needs them). Values of attributes
a policy marks with ``Redact()`` are listed in ``AttributeChange.redacted`` and every renderer
and the plan file show them as ``"(redacted)"``. Values that only exist at apply time
(``Guid()``, ``Now()``, ``RandomString()`` on create) are ``Deferred`` objects (see
``syncctl.expressions``) shown as ``"(known after apply)"``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

REDACTED = "(redacted)"
KNOWN_AFTER_APPLY = "(known after apply)"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DISABLE = "disable"
    ENABLE = "enable"
    DELETE = "delete"
    ADOPT = "adopt"
    ADD = "add"  # membership
    REMOVE = "remove"  # membership
    REPORT = "report"  # entra_user in writeback report mode: shown, never written


class Reason(StrEnum):
    """Stable snake_case codes that explain a change to people."""

    ENTERED_SCOPE = "entered_scope"
    ATTRIBUTES_CHANGED = "attributes_changed"
    OUT_OF_SCOPE = "out_of_scope"
    DISABLED_IN_SOURCE = "disabled_in_source"
    SOFT_DELETED = "soft_deleted"
    HARD_DELETED = "hard_deleted"
    DELETE_AFTER_ELAPSED = "delete_after_elapsed"
    RE_ENTERED_SCOPE = "re_entered_scope"  # syncctl disabled it when it left; it is back
    MATCHED_EXISTING = "matched_existing"
    MATCHED_EXISTING_DISABLED = "matched_existing_disabled"  # adopted and re-enabled
    MEMBER_IN_SCOPE = "member_in_scope"
    MEMBER_LEFT = "member_left"
    GROUP_LEFT_SCOPE = "group_left_scope"
    # The target was edited outside syncctl: the row no longer holds what syncctl last wrote.
    TARGET_DRIFT = "target_drift"
    # Inactive on the target although syncctl never disabled it and it is still in scope.
    TARGET_DISABLED = "target_disabled"
    # Writeback (entra_user): the application's value differs from Entra's.
    ENTRA_DIFFERS = "entra_differs"
    PASSWORD_NOT_SET = "password_not_set"  # syncctl has not set this password yet
    PASSWORD_SECRET_CHANGED = "password_secret_changed"  # the application's secret changed
    PASSWORD_CHANGED_IN_ENTRA = "password_changed_in_entra"  # someone reset it in Entra


class ChangeKind(StrEnum):
    USER = "user"
    GROUP = "group"
    MEMBERSHIP = "membership"
    ENTRA_USER = "entra_user"  # writeback: a user in Entra, written through Graph


@dataclass(frozen=True, slots=True)
class AttributeChange:
    path: str  # flat SCIM path
    before: Any
    after: Any
    redacted: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    address: str  # "user/<userName>", "group/<displayName>", "membership/<group>/<user>"
    kind: ChangeKind
    action: Action
    reason: Reason
    source_id: str | None = None  # Entra object id (users, groups)
    target_id: str | None = None  # None until created
    attributes: tuple[AttributeChange, ...] = ()  # create: every attribute; update: changed ones
    version: str | None = None  # target version read at plan time (stale checks, If-Match)
    group: str | None = None  # membership: Entra id of the group
    user: str | None = None  # membership: Entra id of the user
    # Users and groups: the compared values the object holds once this change is applied.
    # The journal keeps their ``synced_digest`` in the state, so the next plan can tell target
    # drift from an Entra change (``plan_policy(synced=...)``). Hashed only for changes that
    # are applied, not for every plan. Not part of the plan document, nor of equality.
    synced: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Refusal:
    check: str  # "max_deletes" | "max_disables" | "all_managed"
    limit: int
    planned: int
    message: str


@dataclass(frozen=True, slots=True)
class ManagedCounts:
    """What the safety checks measure a plan against (``syncctl.plan.safety``)."""

    users: int = 0  # managed users (active or not)
    groups: int = 0  # managed groups
    active_user_ids: frozenset[str] = frozenset()  # Entra ids of managed users active now


@dataclass(frozen=True, slots=True)
class ObjectError:
    """An object the planner could not plan (mapping error, invalid value, key collision,
    conflict with an object it cannot adopt); it is left untouched this run."""

    address: str
    message: str


SUMMARY_KEYS = (
    "create",
    "update",
    "disable",
    "enable",
    "delete",
    "adopt",
    "member_add",
    "member_remove",
    "entra_update",  # writeback in enforce mode: Entra users to update
    "entra_report",  # writeback in report mode: differences from Entra, never written
    "errors",  # objects that could not be planned (not a change: nothing is done to them)
)


def summarize(changes: tuple[Change, ...], errors: int = 0) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for change in changes:
        if change.kind is ChangeKind.MEMBERSHIP:
            counts["member_" + change.action.value] += 1
        elif change.kind is ChangeKind.ENTRA_USER:
            counts["entra_" + change.action.value] += 1
        else:
            counts[change.action.value] += 1
    counts["errors"] = errors
    return {key: counts[key] for key in SUMMARY_KEYS}


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    name: str
    policy_sha256: str
    tenant: str
    target: dict[str, Any]  # {"type": ..., "path" | "url": ...}: no secrets
    fingerprints: dict[str, str]  # {"source": ..., "target": ...}
    changes: tuple[Change, ...]  # sorted by (kind, address)
    unmanaged: tuple[str, ...] = ()  # addresses of target objects syncctl does not own
    refused: Refusal | None = None
    errors: tuple[ObjectError, ...] = ()
    # The counts the safety checks used; ``safety.evaluate`` re-checks a subset against them.
    managed: ManagedCounts = field(default_factory=ManagedCounts)

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.changes, len(self.errors))

    @property
    def is_empty(self) -> bool:
        """No change to make. Says nothing about errors: see ``has_errors``."""
        return not self.changes

    @property
    def error_count(self) -> int:
        return len(self.errors)

    @property
    def has_errors(self) -> bool:
        """Some objects could not be planned and stay unsynced: never "No changes"."""
        return bool(self.errors)


@dataclass(frozen=True, slots=True)
class Plan:
    policies: tuple[PolicyPlan, ...]
    syncctl_version: str
    created_at: str  # ISO 8601 UTC; the only field that differs between equal plans
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, int]:
        return summarize(tuple(c for p in self.policies for c in p.changes), self.error_count)

    @property
    def is_empty(self) -> bool:
        """No change in any policy. Says nothing about errors: see ``has_errors``."""
        return all(p.is_empty for p in self.policies)

    @property
    def error_count(self) -> int:
        return sum(p.error_count for p in self.policies)

    @property
    def has_errors(self) -> bool:
        return any(p.has_errors for p in self.policies)

    @property
    def refused(self) -> bool:
        return any(p.refused is not None for p in self.policies)
