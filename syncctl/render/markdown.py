"""The markdown plan: a pull-request comment (CLI.md "Markdown plan").

Title, a red banner when anything is deleted or disabled, the plan is refused or some objects
could not be planned (errors), a yellow one when the plan writes to Entra ID (writeback), the
summary, the affected objects per action (collapsed when long; the writeback updates and the
report-only differences in their own lists), the full text plan collapsed. GitHub
rejects comments over 65,536 characters, so the result stays under ``LIMIT`` however large the
plan: lists and the text plan are cut, with counts of what was left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from syncctl.plan.addresses import split_object
from syncctl.render import text
from syncctl.render.wording import (
    ENTRA_REPORT_HEADING,
    ENTRA_UPDATE_HEADING,
    count,
    reason_text,
    summary_line,
)

LIMIT = 60_000
COLLAPSE_OVER = 10  # lists longer than this are inside <details>
# (summary key, heading), most dangerous first
SECTIONS = (
    ("delete", "To delete"),
    ("disable", "To disable"),
    ("create", "To create"),
    ("adopt", "To adopt"),
    ("update", "To update"),
    ("enable", "To re-enable"),
    ("member_add", "Members to add"),
    ("member_remove", "Members to remove"),
    # Writeback: written to Entra, not the target, so after everything the target gets.
    ("entra_update", ENTRA_UPDATE_HEADING),
    ("entra_report", ENTRA_REPORT_HEADING),
)
# Reasons of an entra_user change that sets a password (the banner counts them apart).
PASSWORD_REASONS = frozenset(
    {"password_not_set", "password_secret_changed", "password_changed_in_entra"}
)
_TRUNCATED = "... {n} more lines not shown: run `syncctl show` on the saved plan for all of it"


def render(plan: dict[str, Any]) -> str:
    body = text.render(plan, color=False).rstrip("\n")
    if len(body) < LIMIT:  # otherwise the whole document cannot fit: skip building it
        full = _document(plan, body, list_cap=None, text_budget=None)
        if len(full) <= LIMIT:
            return full
    for cap in (100, 20, 0):
        without_text = _document(plan, body, list_cap=cap, text_budget=0)
        budget = LIMIT - len(without_text) - 500
        if budget >= 0:
            return _document(plan, body, list_cap=cap, text_budget=budget)
    return _hard_cut(without_text)


def _document(
    plan: Mapping[str, Any], body: str, *, list_cap: int | None, text_budget: int | None
) -> str:
    policies = plan["policies"]
    names = ", ".join(_code(p["name"]) for p in policies) or "(no policies)"
    out = [f"## syncctl plan for {names}", ""]
    out += _banner(plan)
    out += [f"**{summary_line(plan['summary'])}**", ""]
    for policy in policies:
        if len(policies) > 1:
            out += [f"### Policy {_code(policy['name'])}", "", summary_line(policy["summary"]), ""]
        out += _policy_lists(policy, list_cap)
    out += _text_block(body, text_budget)
    return "\n".join(out).rstrip("\n") + "\n"


def _banner(plan: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for policy in plan["policies"]:
        refused = policy.get("refused")
        if refused:
            lines.append(
                f"> **Refused by safety check `{refused['check']}`** (policy "
                f"{_code(policy['name'])}): {refused['message']}. Nothing will be applied "
                "unless `--allow-mass-delete` is given."
            )
    summary = plan["summary"]
    errors = summary.get("errors", 0)
    if errors:
        they = "it is" if errors == 1 else "they are"
        lines.append(
            f"> **{count(errors, 'object')} could not be planned**: {they} not synced "
            "until the errors listed below are fixed."
        )
    harmful = [
        f"**{verb} {count(summary[key], noun)}**"
        for key, verb, noun in (("delete", "delete", "object"), ("disable", "disable", "user"))
        if summary[key]
    ]
    if harmful:
        lines.append(f"> This plan will {' and '.join(harmful)}.")
    return [*_alert("CAUTION", lines), *_alert("WARNING", _entra_warning(plan))]


def _entra_warning(plan: Mapping[str, Any]) -> list[str]:
    """Writing to Entra ID changes the identity every other application trusts: a reviewer
    must see it before the lists, even when nothing on the target is deleted. Report-only
    differences write nothing and get no banner (their list says so)."""
    updates = [
        c
        for policy in plan["policies"]
        for c in policy["changes"]
        if c["kind"] == "entra_user" and c["action"] != "report"
    ]
    if not updates:
        return []
    # Users, not changes: a password is a change of its own (entra_user/<upn>/passwordProfile)
    # next to the user's attribute change. A UPN has no "/", so it is the second segment.
    users = {c["address"].split("/")[1] for c in updates}
    passwords = sum(1 for c in updates if c["reason"] in PASSWORD_REASONS)
    which = f" ({count(passwords, 'password')})" if passwords else ""
    return [f"> This plan writes to Entra ID: **{count(len(users), 'user')}**{which}."]


def _alert(kind: str, lines: Sequence[str]) -> list[str]:
    """A GitHub alert block (``> [!CAUTION]``), its paragraphs separated; none if empty."""
    if not lines:
        return []
    out = [f"> [!{kind}]"]
    for index, line in enumerate(lines):
        out += [">", line] if index else [line]
    return [*out, ""]


def _policy_lists(policy: Mapping[str, Any], cap: int | None) -> list[str]:
    by_key: dict[str, list[Mapping[str, Any]]] = {key: [] for key, _ in SECTIONS}
    for change in policy["changes"]:
        by_key[_section_key(change)].append(change)
    out: list[str] = []
    for key, heading in SECTIONS:
        changes = by_key[key]
        if changes:
            out += _list(f"{heading} ({len(changes)})", changes, cap, _change_item)
    errors = policy.get("errors", ())
    if errors:
        out += _list(
            f"Errors: could not be planned, not synced ({len(errors)})", errors, cap, _error_item
        )
    unmanaged = len(policy["unmanaged"])
    if unmanaged:
        verb = "is" if unmanaged == 1 else "are"
        out += [
            f"_{count(unmanaged, 'object')} on the target {verb} not managed by this "
            "policy and left untouched._",
            "",
        ]
    return out


def _section_key(change: Mapping[str, Any]) -> str:
    """The summary key a change counts under (``syncctl.plan.model.summarize``'s rule)."""
    if change["kind"] == "membership":
        return "member_" + str(change["action"])
    if change["kind"] == "entra_user":
        return "entra_" + str(change["action"])
    return str(change["action"])


def _change_item(change: Mapping[str, Any]) -> str:
    address = change["address"]
    if change["kind"] == "membership":
        return f"- {_code(address.removeprefix('membership/'))}"
    kind, _ = split_object(address)
    item = f"- {_code(address)}: {reason_text(change['reason'], kind)}"
    if kind == "entra_user":
        # Which Entra attributes: the values stay in the full plan (and redacted ones never
        # leave it), the names are what a reviewer of a write to Entra looks for first.
        # A password change's address already ends with its one path: not said twice.
        paths = [a["path"] for a in change["attributes"]]
        if paths and paths != [address.rpartition("/")[2]]:
            item += " (" + ", ".join(_code(path) for path in paths) + ")"
    return item


def _error_item(error: Mapping[str, Any]) -> str:
    return f"- {_code(error['address'])}: {_escape(error['message'])}"


def _list(
    heading: str,
    entries: Sequence[Mapping[str, Any]],
    cap: int | None,
    item: Callable[[Mapping[str, Any]], str],
) -> list[str]:
    """A list of the first ``cap`` entries (all when None), formatted only as far as shown."""
    shown = [item(e) for e in (entries if cap is None else entries[:cap])]
    if len(shown) < len(entries):
        shown.append(f"- ... and {len(entries) - len(shown)} more")
    if len(entries) > COLLAPSE_OVER:
        return [f"<details><summary>{heading}</summary>", "", *shown, "", "</details>", ""]
    return [f"**{heading}**", "", *shown, ""]


def _text_block(body: str, budget: int | None) -> list[str]:
    if budget is not None:
        body = _cut_lines(body, budget)
    fence = _fence(body)
    return [
        "<details><summary>Full plan</summary>",
        "",
        f"{fence}text",
        body,
        fence,
        "",
        "</details>",
    ]


def _cut_lines(body: str, budget: int) -> str:
    if len(body) <= budget:
        return body
    cut = body.rfind("\n", 0, budget + 1)
    kept = body[:cut] if cut > 0 else ""
    left = body.count("\n", len(kept)) + (0 if kept else 1)
    return (kept + "\n" if kept else "") + _TRUNCATED.format(n=left)


def _hard_cut(document: str) -> str:
    """Last resort for thousands of policies: cut whole lines, say how many were dropped."""
    lines = document.split("\n")
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > LIMIT - 200:
            break
        kept.append(line)
        used += len(line) + 1
    kept += ["", f"_... {len(lines) - len(kept)} more lines not shown._", ""]
    return "\n".join(kept)


def _fence(body: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def _code(value: str) -> str:
    """An inline code span that survives backticks in names."""
    longest = max((len(m) for m in re.findall(r"`+", value)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def _escape(message: str) -> str:
    return re.sub(r"([<>*_\\`\[\]|])", r"\\\1", message)
