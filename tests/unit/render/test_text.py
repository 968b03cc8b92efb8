"""The text plan: CLI.md's Terraform style, colour only when asked, every marker shown."""

from __future__ import annotations

import re
from typing import Any

from syncctl.model import RemovalReason
from syncctl.plan.planfile import plan_to_dict
from syncctl.policy.model import AttributeMapping, Threshold
from syncctl.render import text
from tests.unit.plan.support import (
    make_policy,
    plan_of,
    snapshot,
    source_group,
    source_user,
    target_group,
    target_snapshot,
    target_user,
    whole_plan,
)


def cli_md_example() -> dict[str, Any]:
    """The plan CLI.md shows: create alice, update bob, disable carol, one membership change."""
    policy = make_policy(max_disables=Threshold(count=5))
    source = snapshot(
        [
            source_user("u-alice", "alice@contoso.com", displayName="Alice Adams"),
            source_user("u-bob", "bob@contoso.com", displayName="Bob Brown"),
            source_user("u-dan", "dan@contoso.com", displayName="Dan"),
        ],
        [source_group("g1", "Vault Admins", ("u-alice",))],
    )
    target = target_snapshot(
        [
            target_user("t-bob", "bob@contoso.com", "u-bob", displayName="Bob"),
            target_user("t-carol", "carol@contoso.com", "u-carol", displayName="Carol"),
            target_user("t-dan", "dan@contoso.com", "u-dan", displayName="Dan"),
        ],
        [target_group("tg1", "Vault Admins", "g1")],
        {"tg1": {"t-carol"}},
    )
    return plan_to_dict(whole_plan(plan_of(policy, source, target)))


EXPECTED = """\
syncctl will perform the following actions for policy "contoso-vault":

  # user "alice@contoso.com" will be created
  + user "alice@contoso.com" {
      + userName    = "alice@contoso.com"
      + displayName = "Alice Adams"
    }

  # user "bob@contoso.com" will be updated in-place (attributes changed in Entra)
  ~ user "bob@contoso.com" {
      ~ displayName = "Bob" -> "Bob Brown"
    }

  # user "carol@contoso.com" will be disabled (no longer in scope)
  - user "carol@contoso.com" { active = true -> false }

  # group "Vault Admins" membership will change
  ~ group "Vault Admins" { + alice@contoso.com  - carol@contoso.com }

Plan: 1 to create, 1 to update, 1 to disable, 0 to delete, 1 member to add, 1 member to remove.
"""


def test_the_cli_md_example_renders_as_documented() -> None:
    assert text.render(cli_md_example()) == EXPECTED


def test_colour_only_when_asked() -> None:
    plain = text.render(cli_md_example())
    coloured = text.render(cli_md_example(), color=True)
    assert "\x1b[" not in plain
    assert "\x1b[32m+\x1b[0m user" in coloured  # green create
    assert "\x1b[33m~\x1b[0m user" in coloured  # yellow update
    assert "\x1b[31m-\x1b[0m user" in coloured  # red disable
    assert "\x1b[31m-\x1b[0m carol@contoso.com" in coloured
    # stripping the colour codes gives the plain text back
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_no_changes() -> None:
    document = plan_to_dict(whole_plan(plan_of(make_policy(), snapshot(), target_snapshot())))
    assert (
        text.render(document) == 'No changes. The target already matches policy "contoso-vault".\n'
    )


def test_several_policies_get_a_total() -> None:
    one = plan_of(make_policy("one"), snapshot([source_user("u1", "a@x.com")]), target_snapshot())
    two = plan_of(make_policy("two"), snapshot(), target_snapshot())
    rendered = text.render(plan_to_dict(whole_plan(one, two)))
    assert 'actions for policy "one"' in rendered
    assert 'No changes. The target already matches policy "two".' in rendered
    assert rendered.endswith(
        "Total: Plan: 1 to create, 0 to update, 0 to disable, 0 to delete, "
        "0 members to add, 0 members to remove.\n"
    )


def test_values_are_quoted_and_escaped_like_json_and_markers_are_not() -> None:
    mappings = (
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("displayName", "[displayName]"),
        AttributeMapping("employeeNumber", "Redact([employeeId])"),
        AttributeMapping("roles", "[roles]"),
    )
    user = source_user(
        "u1", "q@x.com", displayName='Quote "Q" \\ Back', employeeId="S3CRET", roles=["a", "b"]
    )
    rendered = text.render(
        plan_to_dict(
            whole_plan(
                plan_of(make_policy(user_attributes=mappings), snapshot([user]), target_snapshot())
            )
        )
    )
    assert '+ displayName    = "Quote \\"Q\\" \\\\ Back"' in rendered
    assert "+ employeeNumber = (redacted)" in rendered
    assert '+ roles          = ["a", "b"]' in rendered
    assert "S3CRET" not in rendered


def test_many_membership_changes_wrap_one_per_line() -> None:
    users = [source_user(f"u{i}", f"user{i}@contoso.com") for i in range(6)]
    source = snapshot(users, [source_group("g1", "Big", tuple(u.id for u in users))])
    rendered = text.render(
        plan_to_dict(whole_plan(plan_of(make_policy(), source, target_snapshot())))
    )
    assert '  ~ group "Big" {\n      + user0@contoso.com\n      + user1@contoso.com\n' in rendered


def test_deletes_errors_refusals_and_unmanaged_are_shown() -> None:
    policy = make_policy(max_deletes=Threshold(count=0))
    source = snapshot(
        [source_user("u-bad", "bad@x.com")], removed={"u-gone": RemovalReason.HARD_DELETED}
    )
    target = target_snapshot(
        [
            target_user("t-gone", "gone@x.com", "u-gone"),
            target_user("t-keep", "keep@x.com", "u-keep", active=False),
            *[target_user(f"t-l{i}", f"legacy{i:02}", None, managed_by=None) for i in range(12)],
        ]
    )
    plan = plan_of(policy, source, target, fail_for=frozenset({"u-bad"}))
    rendered = text.render(plan_to_dict(whole_plan(plan)))
    comment = '  # user "gone@x.com" will be deleted (permanently deleted in Entra)\n'
    assert comment + '  - user "gone@x.com"\n' in rendered
    assert "Refused by safety check max_deletes: the plan would delete 1 objects" in rendered
    assert "Nothing will be applied unless --allow-mass-delete is given." in rendered
    errors = "Errors: these objects could not be planned and are left untouched:\n"
    assert errors + "  user/bad@x.com: policy" in rendered
    assert rendered.endswith(
        "\nError: 1 object could not be planned; it is not synced (see above).\n"
    )
    assert "12 objects on the target are not managed by this policy" in rendered
    assert "  user/legacy09\n  ... and 2 more\n" in rendered
