"""The markdown plan: banner, summary, lists, collapsed text plan, always under 60,000 chars."""

from __future__ import annotations

from typing import Any

from syncctl.model import RemovalReason
from syncctl.plan.planfile import plan_to_dict
from syncctl.policy.model import Threshold
from syncctl.render import markdown
from tests.unit.plan.support import (
    make_policy,
    plan_of,
    snapshot,
    source_group,
    source_user,
    target_snapshot,
    target_user,
    whole_plan,
)


def huge_plan(n: int) -> dict[str, Any]:
    users = [source_user(f"u{i:06}", f"new.user.{i:06}@contoso.com") for i in range(n)]
    rows = [target_user(f"t{i:06}", f"old.user.{i:06}@contoso.com", f"o{i:06}") for i in range(n)]
    source = snapshot(
        users,
        [source_group("g1", "Everyone", tuple(u.id for u in users))],
        {f"o{i:06}": RemovalReason.HARD_DELETED for i in range(n)},
    )
    policy = make_policy(max_deletes=Threshold(count=1))
    return plan_to_dict(whole_plan(plan_of(policy, source, target_snapshot(rows))))


def test_small_plan_has_title_summary_lists_and_the_full_text_plan() -> None:
    source = snapshot([source_user("u1", "alice@contoso.com")])
    rendered = markdown.render(
        plan_to_dict(whole_plan(plan_of(make_policy(), source, target_snapshot())))
    )
    assert rendered.startswith("## syncctl plan for `contoso-vault`\n\n**Plan: 1 to create,")
    assert "[!CAUTION]" not in rendered  # nothing deleted or disabled: no banner
    assert (
        "**To create (1)**\n\n- `user/alice@contoso.com`: entered the policy's scope\n" in rendered
    )
    assert "<details><summary>Full plan</summary>\n\n```text\nsyncctl will perform" in rendered
    assert rendered.endswith("```\n\n</details>\n")


def test_deletes_and_disables_raise_a_red_banner() -> None:
    source = snapshot([source_user(f"u{i}", f"u{i}@x.com") for i in range(20)])
    target = target_snapshot(
        [target_user(f"t{i}", f"u{i}@x.com", f"u{i}", displayName=f"U{i}@X.Com") for i in range(20)]
        + [target_user("t-gone", "gone@x.com", "u-gone")]
    )
    policy = make_policy(max_disables=Threshold(count=0))
    rendered = markdown.render(plan_to_dict(whole_plan(plan_of(policy, source, target))))
    assert "> [!CAUTION]\n> **Refused by safety check `max_disables`**" in rendered
    assert "> This plan will **disable 1 user**." in rendered


def test_huge_plan_stays_under_the_limit_and_says_what_was_left_out() -> None:
    document = huge_plan(6000)
    rendered = markdown.render(document)
    assert len(rendered) <= markdown.LIMIT
    assert "> This plan will **delete 6000 objects**." in rendered
    assert "<details><summary>To create (6001)</summary>" in rendered
    assert "- ... and " in rendered
    assert "more lines not shown" in rendered
    assert rendered.rstrip().endswith("</details>")


def test_long_lists_are_collapsed() -> None:
    rendered = markdown.render(huge_plan(11))
    assert "<details><summary>To delete (11)</summary>" in rendered
    assert len(rendered) < markdown.LIMIT and "not shown" not in rendered


def test_backticks_in_names_cannot_break_the_code_spans() -> None:
    user = source_user("u1", "odd`name@x.com")
    rendered = markdown.render(
        plan_to_dict(whole_plan(plan_of(make_policy(), snapshot([user]), target_snapshot())))
    )
    assert "- ``user/odd`name@x.com``: entered" in rendered
