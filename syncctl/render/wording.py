"""Words shared by the text and markdown renderers: summary lines, verbs, reasons."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode

VERBS = {
    "create": "created",
    "update": "updated in-place",
    "disable": "disabled",
    "enable": "re-enabled",
    "delete": "deleted",
    "adopt": "adopted",
}

REASONS = {
    "entered_scope": "entered the policy's scope",
    "attributes_changed": "attributes changed in Entra",
    "out_of_scope": "no longer in scope",
    "disabled_in_source": "disabled in Entra",
    "soft_deleted": "deleted in Entra, still restorable",
    "hard_deleted": "permanently deleted in Entra",
    "delete_after_elapsed": "disabled for longer than deletion.delete_after",
    "re_entered_scope": "back in scope",
    # Drift: the cause is on the target, not in Entra; say so (issue 11).
    "target_drift": "changed on the target",
    "target_disabled": "disabled on the target, still in scope",
    "matched_existing": "matches an existing unmanaged {kind} by mappings.{kind}.match",
    "matched_existing_disabled": (
        "matches an existing unmanaged {kind} by mappings.{kind}.match, which is disabled"
        " and will be re-enabled"
    ),
    "member_in_scope": "member in scope",
    "member_left": "member left",
    "group_left_scope": "no longer selected by source.groups",
    # Writeback (entra_user): the application is the source of these values, Entra the target.
    "entra_differs": "the application's value differs from Entra",
    "password_not_set": "password not yet set by syncctl",
    "password_secret_changed": "the password secret changed",
    "password_changed_in_entra": "the password was changed in Entra since syncctl set it",
}

# Headings of the two writeback sections (text and markdown plans).
ENTRA_UPDATE_HEADING = "Entra will be updated"
ENTRA_REPORT_HEADING = "Differences from Entra, reported only"
ENTRA_REPORT_NOTE = "writeback mode report; nothing is written"


def reason_text(reason: str, kind: str) -> str:
    return REASONS.get(reason, reason.replace("_", " ")).format(kind=kind)


def count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def error_banner(errors: int) -> str:
    """The one line that says a plan is not the whole story (text renderer)."""
    they = "it is" if errors == 1 else "they are"
    return f"Error: {count(errors, 'object')} could not be planned; {they} not synced (see above)."


def summary_line(summary: Mapping[str, int]) -> str:
    """``Plan: 1 to create, ...`` as CLI.md shows it; adopt/enable and the writeback counts
    only when they happen, so a plan without writeback reads exactly as it always did."""
    parts = [f"{summary['create']} to create"]
    if summary["adopt"]:
        parts.append(f"{summary['adopt']} to adopt")
    parts.append(f"{summary['update']} to update")
    if summary["enable"]:
        parts.append(f"{summary['enable']} to enable")
    parts += [
        f"{summary['disable']} to disable",
        f"{summary['delete']} to delete",
        count(summary["member_add"], "member") + " to add",
        count(summary["member_remove"], "member") + " to remove",
    ]
    # .get: a document from before writeback has no entra_* keys (the schema now requires
    # them, but a renderer should not be the place that fails on one).
    # Counts of changes, not of users: a password is a change of its own
    # (entra_user/<upn>/passwordProfile), so "N Entra users" would count some users twice.
    if summary.get("entra_update", 0):
        parts.append(f"{summary['entra_update']} to update in Entra")
    if summary.get("entra_report", 0):
        parts.append(count(summary["entra_report"], "Entra difference") + " reported")
    return "Plan: " + ", ".join(parts) + "."


def quote(text: str) -> str:
    """A name in double quotes, escaped like a JSON string."""
    return _json(text)


def value_text(value: Any, *, redacted: bool = False, deferred: bool = False) -> str:
    """One attribute value as the text plan shows it (markers unquoted, like Terraform's)."""
    if value is None:
        return "null"
    if deferred:
        return "(known after apply)"
    if redacted:
        return "(redacted)"
    return _json(value)
