"""Writeback (``entra_user``) changes in every plan output: their sections, their counts, the
schema, and the one rule that matters most: a password never appears anywhere."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from syncctl.errors import PlanFileError
from syncctl.plan.model import Action, AttributeChange, Plan, Reason
from syncctl.plan.planfile import dumps, dumps_dict, loads, plan_schema, plan_to_dict
from syncctl.render import json as json_render
from syncctl.render import markdown, summary, text
from syncctl.render.wording import summary_line
from tests.golden.writeback import (
    SECRETS,
    enforce_and_report,
    password_change,
    policy_plan,
)
from tests.unit.plan.support import CREATED_AT, VERSION

SECRET = "S3cr3t!-Vault-9f2c7d1e"


def _password_plan(action: Action = Action.UPDATE, before: str | None = None) -> Plan:
    change = password_change(
        "svc-backup@contoso.com",
        action,
        Reason.PASSWORD_SECRET_CHANGED,
        SECRET,
        before=before,
        entra_id="e-backup",
    )
    return Plan((policy_plan("contoso-vault", (change,)),), VERSION, CREATED_AT)


def _all_outputs(plan: Plan) -> dict[str, str]:
    document = plan_to_dict(plan)
    return {
        "text": text.render(document),
        "text (colour)": text.render(document, color=True),
        "json": json_render.render(document),
        "plan file": dumps(plan),
        "markdown": markdown.render(document),
        "summary text": summary.text([_row(plan)]),
        "summary markdown": summary.markdown([_row(plan)]),
    }


def _row(plan: Plan) -> dict[str, Any]:
    counts = {k: v for k, v in plan.summary.items() if v}
    return {"policy": "p", "outcome": "planned", "counts": counts, "errors": 0, "error": None}


@pytest.mark.parametrize("action", [Action.UPDATE, Action.REPORT])
@pytest.mark.parametrize("before", [None, "0ld-S3cr3t!-a81b"])
def test_a_password_never_appears_in_any_output(action: Action, before: str | None) -> None:
    for name, output in _all_outputs(_password_plan(action, before)).items():
        assert SECRET not in output, name
        if before is not None:
            assert before not in output, name
        if not name.startswith("summary"):
            assert "(redacted)" in output, name
            assert "passwordProfile" in output, name


def test_no_output_of_the_golden_writeback_plan_holds_a_password() -> None:
    for name, output in _all_outputs(enforce_and_report()).items():
        for secret in SECRETS:
            assert secret not in output, name


def test_the_text_plan_shows_the_password_as_redacted_in_its_section() -> None:
    rendered = text.render(plan_to_dict(_password_plan()))
    assert rendered.splitlines() == [
        'The target already matches policy "contoso-vault".',
        "",
        "Entra will be updated (writeback):",
        "",
        '  # entra_user "svc-backup@contoso.com/passwordProfile" will be updated in-place'
        " (the password secret changed)",
        '  ~ entra_user "svc-backup@contoso.com/passwordProfile" {',
        "      + passwordProfile = (redacted)",
        "    }",
        "",
        "Plan: 0 to create, 0 to update, 0 to disable, 0 to delete, 0 members to add,"
        " 0 members to remove, 1 to update in Entra.",
    ]


def test_report_changes_have_their_own_section_and_no_entra_banner() -> None:
    document = plan_to_dict(_password_plan(Action.REPORT))
    rendered = text.render(document)
    assert "Entra will be updated" not in rendered
    assert (
        "Differences from Entra, reported only (writeback mode report; nothing is written):"
        in rendered
    )
    assert "would be updated in-place (the password secret changed)" in rendered
    assert rendered.rstrip().endswith("0 members to remove, 1 Entra difference reported.")
    md = markdown.render(document)
    assert "[!WARNING]" not in md and "writes to Entra ID" not in md
    assert "**Differences from Entra, reported only (1)**" in md


def test_markdown_warns_about_writes_to_entra() -> None:
    md = markdown.render(plan_to_dict(enforce_and_report()))
    # Users, not changes: svc-backup has an attribute change and a password change.
    assert "> [!WARNING]\n> This plan writes to Entra ID: **2 users** (2 passwords).\n" in md
    assert "[!CAUTION]" not in md  # nothing deleted or disabled


def test_summary_line_without_writeback_is_unchanged() -> None:
    counts = dict.fromkeys(
        ("create", "update", "disable", "enable", "delete", "adopt", "member_add"), 0
    )
    counts |= {"member_remove": 2, "entra_update": 0, "entra_report": 0, "errors": 0}
    expected = (
        "Plan: 0 to create, 0 to update, 0 to disable, 0 to delete, 0 members to add,"
        " 2 members to remove."
    )
    assert summary_line(counts) == expected
    # A document from before writeback (no entra_* keys) still renders.
    old = {k: v for k, v in counts.items() if not k.startswith("entra_")}
    assert summary_line(old) == expected
    counts |= {"entra_update": 2, "entra_report": 1}
    assert summary_line(counts) == (
        expected.removesuffix(".") + ", 2 to update in Entra, 1 Entra difference reported."
    )


def test_the_run_summary_table_names_the_entra_counts() -> None:
    table = summary.text([_row(enforce_and_report())])
    assert "2 Entra difference reported, 3 Entra update, 1 member add, 1 update" in table


def test_markdown_of_a_huge_writeback_plan_stays_under_the_limit() -> None:
    changes = tuple(
        password_change(
            f"svc-{i:05}@contoso.com",
            Action.UPDATE if i % 2 else Action.REPORT,
            Reason.PASSWORD_NOT_SET,
            f"{SECRET}-{i}",
            entra_id=f"e-{i}",
        )
        for i in range(6000)
    )
    plan = Plan((policy_plan("contoso-vault", changes),), VERSION, CREATED_AT)
    md = markdown.render(plan_to_dict(plan))
    assert len(md) <= markdown.LIMIT
    assert "<details><summary>Entra will be updated (3000)</summary>" in md
    assert "<details><summary>Differences from Entra, reported only (3000)</summary>" in md
    assert "- ... and " in md
    assert "This plan writes to Entra ID: **3000 users** (3000 passwords)." in md
    assert SECRET not in md


# -- the plan document and its schema ---------------------------------------------------


def test_a_plan_with_entra_user_changes_validates_and_loads_back_identically() -> None:
    plan = enforce_and_report()
    written = dumps(plan)
    jsonschema.validate(json.loads(written), plan_schema())
    assert loads(written) == plan_to_dict(plan)
    assert dumps_dict(loads(written)) == written


def _changed(edit: dict[str, Any]) -> dict[str, Any]:
    document = plan_to_dict(_password_plan())
    document["policies"][0]["changes"][0].update(edit)
    return document


def _attribute_changed(edit: dict[str, Any]) -> dict[str, Any]:
    document = plan_to_dict(_password_plan())
    document["policies"][0]["changes"][0]["attributes"][0].update(edit)
    return document


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(_changed({"action": "create"}), id="action create"),
        pytest.param(_changed({"action": "delete"}), id="action delete"),
        pytest.param(_changed({"reason": "attributes_changed"}), id="target reason"),
        pytest.param(_changed({"address": "user/svc-backup@contoso.com"}), id="user address"),
        pytest.param(_changed({"kind": "user"}), id="kind user with an entra address"),
        pytest.param(_changed({"group": "g1"}), id="extra key"),
        pytest.param(_attribute_changed({"after": SECRET}), id="redacted secret leaked"),
        pytest.param(_attribute_changed({"before": SECRET}), id="redacted before leaked"),
        pytest.param(_attribute_changed({"redacted": None}), id="redacted not true"),
    ],
)
def test_the_schema_refuses_a_malformed_entra_user_change(document: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "digest": "sha256:" + "0" * 64}, plan_schema())


def test_the_schema_refuses_a_password_not_marked_redacted() -> None:
    document = _attribute_changed({"after": "(redacted)"})
    del document["policies"][0]["changes"][0]["attributes"][0]["redacted"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "digest": "sha256:" + "0" * 64}, plan_schema())


def test_a_saved_plan_holding_a_password_is_refused_on_load() -> None:
    written = json.loads(dumps(_password_plan()))
    written["policies"][0]["changes"][0]["attributes"][0]["after"] = SECRET
    with pytest.raises(PlanFileError, match=r"invalid syncctl plan at \$\.policies\[0\]"):
        loads(json.dumps(written))


def test_a_plan_saved_before_writeback_still_loads() -> None:
    """Plans saved by a syncctl without writeback have no entra_* summary keys; applying one
    after an upgrade must still work (format_version is still "1")."""
    document = plan_to_dict(_password_plan())
    for key in ("entra_update", "entra_report"):
        del document["summary"][key]
        del document["policies"][0]["summary"][key]
    jsonschema.validate({**document, "digest": "sha256:" + "0" * 64}, plan_schema())
    document["summary"]["entra_update"] = -1  # present, they must still be counts
    with pytest.raises(jsonschema.ValidationError, match="entra_update"):
        jsonschema.validate({**document, "digest": "sha256:" + "0" * 64}, plan_schema())


def test_an_unredacted_attribute_of_an_entra_user_is_shown() -> None:
    # Redaction follows the flag, not the kind: a plain Entra attribute is shown as it is.
    plan = _password_plan()
    change = plan.policies[0].changes[0]
    plain = replace(change, attributes=(AttributeChange("employeeId", "E-1", "E-2"),))
    shown = text.render(plan_to_dict(replace(plan, policies=(policy_plan("p", (plain,)),))))
    assert '~ employeeId = "E-1" -> "E-2"' in shown
