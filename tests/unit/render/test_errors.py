"""Outcomes that say what happened (issue 11): a plan that leaves objects unplanned because of
errors is never "No changes"; text and markdown say how many and which."""

from __future__ import annotations

from typing import Any

from syncctl.plan.planfile import plan_to_dict
from syncctl.render import markdown, text
from tests.unit.plan.support import (
    make_policy,
    plan_of,
    snapshot,
    source_user,
    target_snapshot,
    target_user,
    whole_plan,
)

FAILING = frozenset({f"u{i:02}" for i in range(48)})


def errors_only() -> dict[str, Any]:
    """48 users whose mapping fails, one user already in sync: no change can be planned."""
    users = [source_user(f"u{i:02}", f"user{i:02}@contoso.com") for i in range(49)]
    rows = [target_user("t48", "user48@contoso.com", "u48", displayName="User48")]
    plan = plan_of(make_policy(), snapshot(users), target_snapshot(rows), fail_for=FAILING)
    assert plan.is_empty and plan.has_errors and plan.error_count == 48
    return plan_to_dict(whole_plan(plan))


def test_the_summary_counts_errors_per_policy_and_overall() -> None:
    document = errors_only()
    assert document["summary"]["errors"] == 48
    assert document["policies"][0]["summary"]["errors"] == 48


def test_text_never_says_no_changes_when_objects_could_not_be_planned() -> None:
    rendered = text.render(errors_only())
    assert "No changes. The target already matches" not in rendered
    assert "  user/user00@contoso.com: policy " in rendered  # each object and its message
    assert rendered.count("\n  user/user") == 48
    assert rendered.endswith(
        "\nError: 48 objects could not be planned; they are not synced (see above).\n"
    )


def test_text_still_says_no_changes_when_there_are_none_and_no_errors() -> None:
    plan = plan_of(make_policy(), snapshot(), target_snapshot())
    rendered = text.render(plan_to_dict(whole_plan(plan)))
    assert rendered.startswith("No changes. The target already matches")
    assert "could not be planned" not in rendered


def test_markdown_shows_a_red_error_banner_where_the_deletion_banner_goes() -> None:
    rendered = markdown.render(errors_only())
    title, banner, rest = rendered.split("\n\n", 2)
    assert title == "## syncctl plan for `contoso-vault`"
    assert banner == (
        "> [!CAUTION]\n> **48 objects could not be planned**: they are not synced until the "
        "errors listed below are fixed."
    )
    assert "Errors: could not be planned, not synced (48)" in rest


def test_markdown_error_banner_joins_the_deletion_banner() -> None:
    users = [source_user("u-bad", "bad@contoso.com")]
    rows = [
        target_user("t-gone", "gone@contoso.com", "u-gone"),
        *[
            target_user(f"t{i}", f"k{i}@contoso.com", f"u{i}", displayName=f"K{i}")
            for i in range(9)
        ],
    ]
    source = snapshot([*users, *[source_user(f"u{i}", f"k{i}@contoso.com") for i in range(9)]])
    plan = plan_of(make_policy(), source, target_snapshot(rows), fail_for=frozenset({"u-bad"}))
    rendered = markdown.render(plan_to_dict(whole_plan(plan)))
    banner = rendered.split("\n\n")[1]
    assert banner.startswith("> [!CAUTION]\n> **1 object could not be planned**: it is not")
    assert "> This plan will **disable 1 user**." in banner
