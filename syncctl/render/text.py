"""The text plan (CLI.md "Text plan"): Terraform's layout, colour only when asked.

Renders the plan document (``plan_to_dict``), never the in-memory Plan, so ``syncctl show``
of a saved file prints exactly what ``syncctl plan`` printed. Writeback (``entra_user``)
changes come after the target's, in two sections: what will be written to Entra, and what
report mode only shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syncctl.plan.addresses import split_membership, split_object
from syncctl.render.wording import (
    ENTRA_REPORT_HEADING,
    ENTRA_REPORT_NOTE,
    ENTRA_UPDATE_HEADING,
    VERBS,
    count,
    error_banner,
    quote,
    reason_text,
    summary_line,
    value_text,
)

GREEN, YELLOW, RED, BOLD, RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
SYMBOLS = {
    "create": "+",
    "adopt": "~",
    "update": "~",
    "enable": "~",
    "disable": "-",
    "delete": "-",
    "add": "+",
    "remove": "-",
    "report": "~",  # writeback report mode: what an update would be, never made
}
ENTRA_USER = "entra_user"
LISTED_AT_MOST = 10  # unmanaged addresses shown before "... and N more"
INLINE_MEMBERS_AT_MOST = 4
INLINE_WIDTH = 100


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def symbol(self, action: str) -> str:
        symbol = SYMBOLS[action]
        code = {"+": GREEN, "~": YELLOW, "-": RED}[symbol]
        return self.paint(symbol, code)


def render(plan: dict[str, Any], *, color: bool = False) -> str:
    style = _Style(color)
    sections = [_policy(p, style) for p in plan["policies"]]
    if len(plan["policies"]) > 1:
        sections.append(style.paint("Total: ", BOLD) + summary_line(plan["summary"]) + "\n")
    if not sections:
        sections.append("No policies in this plan.\n")
    return "\n".join(sections)


def _policy(policy: Mapping[str, Any], style: _Style) -> str:
    name = quote(policy["name"])
    lines: list[str] = []
    changes = policy["changes"]
    errors = policy.get("errors", ())
    # Writeback changes go to Entra, not the target: their own sections, after the target's.
    on_target = [c for c in changes if c["kind"] != ENTRA_USER]
    entra_updates = [c for c in changes if c["kind"] == ENTRA_USER and c["action"] != "report"]
    entra_reports = [c for c in changes if c["kind"] == ENTRA_USER and c["action"] == "report"]
    if on_target:
        lines += [f"syncctl will perform the following actions for policy {name}:", ""]
        objects = [c for c in on_target if c["kind"] != "membership"]
        for change in objects:
            lines += _object_change(change, policy["name"], style)
            lines.append("")
        for group, members in _memberships_by_group(on_target):
            lines += _membership_change(group, members, style)
            lines.append("")
    elif changes:
        # Only writeback: the target itself needs nothing (not "No changes": Entra may).
        if errors:
            lines += [
                f"No changes to the target for the objects of policy {name} that could be planned.",
                "",
            ]
        else:
            lines += [f"The target already matches policy {name}.", ""]
    if entra_updates:
        lines += [style.paint(f"{ENTRA_UPDATE_HEADING} (writeback):", BOLD), ""]
        for change in entra_updates:
            lines += _object_change(change, policy["name"], style)
            lines.append("")
    if entra_reports:
        lines += [style.paint(f"{ENTRA_REPORT_HEADING} ({ENTRA_REPORT_NOTE}):", BOLD), ""]
        for change in entra_reports:
            lines += _object_change(change, policy["name"], style)
            lines.append("")
    if changes:
        lines.append(summary_line(policy["summary"]))
    elif errors:
        # Not "the target already matches": the objects with errors were not even compared.
        lines.append(f"No changes for the objects of policy {name} that could be planned.")
    else:
        lines.append(f"No changes. The target already matches policy {name}.")
    lines += _refusal(policy.get("refused"), style)
    lines += _errors(errors, style)
    lines += _unmanaged(policy["unmanaged"])
    if errors:
        lines += ["", style.paint(error_banner(len(errors)), BOLD + RED)]
    return "\n".join(lines) + "\n"


def _object_change(change: Mapping[str, Any], policy_name: str, style: _Style) -> list[str]:
    kind, key = split_object(change["address"])
    action = change["action"]
    head = f"{style.symbol(action)} {kind} {quote(key)}"
    why = "" if action == "create" else f" ({reason_text(change['reason'], kind)})"
    # Report mode: what enforce mode would do; the section heading says nothing is written.
    verb = f"would be {VERBS['update']}" if action == "report" else f"will be {VERBS[action]}"
    comment = f"  # {kind} {quote(key)} {verb}{why}"
    rows = _attribute_rows(change, style)
    if action == "disable":
        return [comment, f"  {head} {{ active = true -> false }}"]
    if action == "delete":
        return [comment, f"  {head}"]
    if action == "enable" or change["reason"] == "matched_existing_disabled":
        rows.insert(0, (style.symbol("update"), "active", "false -> true"))
    if action == "adopt":
        if not rows:
            return [comment, f"  {head} {{ managed_by = null -> {quote(policy_name)} }}"]
        rows.insert(0, (style.symbol("update"), "managed_by", f"null -> {quote(policy_name)}"))
    if not rows:
        return [comment, f"  {head} {{}}"]
    width = max(len(path) for _, path, _ in rows)
    body = [f"      {sym} {path.ljust(width)} = {text}" for sym, path, text in rows]
    return [comment, f"  {head} {{", *body, "    }"]


def _attribute_rows(change: Mapping[str, Any], style: _Style) -> list[tuple[str, str, str]]:
    rows = []
    for attribute in change["attributes"]:
        redacted = bool(attribute.get("redacted"))
        deferred = bool(attribute.get("known_after_apply"))
        before = value_text(attribute["before"], redacted=redacted)
        after = value_text(attribute["after"], redacted=redacted, deferred=deferred)
        path = attribute["path"]
        if change["action"] == "create" or attribute["before"] is None:
            rows.append((style.symbol("create"), path, after))
        elif attribute["after"] is None:
            rows.append((style.symbol("delete"), path, f"{before} -> null"))
        else:
            rows.append((style.symbol("update"), path, f"{before} -> {after}"))
    return rows


def _memberships_by_group(
    changes: Sequence[Mapping[str, Any]],
) -> list[tuple[str, list[tuple[str, str]]]]:
    groups: dict[str, list[tuple[str, str]]] = {}
    for change in changes:
        if change["kind"] == "membership":
            group, user = split_membership(change["address"])
            groups.setdefault(group, []).append((change["action"], user))
    return sorted(groups.items())


def _membership_change(group: str, members: list[tuple[str, str]], style: _Style) -> list[str]:
    comment = f"  # group {quote(group)} membership will change"
    head = f"  {style.symbol('update')} group {quote(group)} {{"
    items = [f"{style.symbol(action)} {user}" for action, user in members]
    plain = [f"{SYMBOLS[action]} {user}" for action, user in members]
    inline = f"  ~ group {quote(group)} {{ {'  '.join(plain)} }}"
    if len(members) <= INLINE_MEMBERS_AT_MOST and len(inline) <= INLINE_WIDTH:
        return [comment, f"{head} {'  '.join(items)} }}"]
    return [comment, head, *(f"      {item}" for item in items), "    }"]


def _refusal(refused: Mapping[str, Any] | None, style: _Style) -> list[str]:
    if not refused:
        return []
    return [
        "",
        style.paint(f"Refused by safety check {refused['check']}: ", BOLD + RED)
        + f"{refused['message']}.",
        "Nothing will be applied unless --allow-mass-delete is given.",
    ]


def _errors(errors: Sequence[Mapping[str, Any]], style: _Style) -> list[str]:
    if not errors:
        return []
    title = "Errors: these objects could not be planned and are left untouched:"
    return [
        "",
        style.paint(title, BOLD + RED),
        *(f"  {e['address']}: {e['message']}" for e in errors),
    ]


def _unmanaged(addresses: Sequence[str]) -> list[str]:
    if not addresses:
        return []
    total = len(addresses)
    shown = [f"  {a}" for a in addresses[:LISTED_AT_MOST]]
    if total > LISTED_AT_MOST:
        shown.append(f"  ... and {total - LISTED_AT_MOST} more")
    verb = "is" if total == 1 else "are"
    return [
        "",
        f"{count(total, 'object')} on the target {verb} not managed by this policy "
        "and left untouched:",
        *shown,
    ]
