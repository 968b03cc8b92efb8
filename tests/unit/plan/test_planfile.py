"""The plan document: one marshaller, canonical text, schema-checked loading, no secrets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from syncctl.errors import EXIT_REFUSED, PlanFileError, SyncctlError
from syncctl.plan.model import Plan
from syncctl.plan.planfile import (
    ModifiedPlanError,
    document_digest,
    dumps,
    dumps_dict,
    loads,
    plan_schema,
    plan_to_dict,
)
from syncctl.policy.model import AttributeMapping, Threshold
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

SECRET = "E-SECRET-4711"


def rich_plan() -> Plan:
    mappings = (
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("displayName", "[displayName]"),
        AttributeMapping("employeeNumber", "Redact([employeeId])"),
    )
    policy = make_policy(user_attributes=mappings, max_disables=Threshold(count=0))
    source = snapshot(
        [
            source_user("u1", "alice@contoso.com", employeeId=SECRET),
            source_user("u2", "bob@contoso.com", displayName="Bob Brown", employeeId="new"),
            source_user("u5", "eve@contoso.com"),
        ],
        [source_group("g1", "Vault Admins", ("u1", "u2"))],
    )
    target = target_snapshot(
        [
            target_user("t2", "bob@contoso.com", "u2", displayName="Bob", employeeNumber=SECRET),
            target_user("t3", "carol@contoso.com", "u3"),
            target_user("t4", "legacy", None, managed_by=None),
        ],
        [target_group("tg1", "Vault Admins", "g1")],
        {"tg1": {"t3"}},
    )
    return whole_plan(plan_of(policy, source, target, fail_for=frozenset({"u5"})))


def saved(plan: Plan) -> dict[str, Any]:
    """The document as a plan file holds it (with its digest)."""
    document: dict[str, Any] = json.loads(dumps(plan))
    return document


def test_plan_document_matches_the_schema_and_the_cli_md_shape() -> None:
    document = saved(rich_plan())
    jsonschema.Draft202012Validator.check_schema(plan_schema())
    jsonschema.validate(document, plan_schema())
    assert (document["format_version"], document["kind"]) == ("1", "syncctl-plan")
    policy = document["policies"][0]
    assert policy["summary"] == document["summary"]
    assert policy["refused"]["check"] == "max_disables"
    assert policy["unmanaged"] == ["user/legacy"]
    assert policy["errors"][0]["address"] == "user/eve@contoso.com"
    assert policy["summary"]["errors"] == document["summary"]["errors"] == 1
    assert document["digest"].startswith("sha256:")
    membership = next(c for c in policy["changes"] if c["kind"] == "membership")
    assert set(membership) == {"address", "kind", "action", "reason", "group", "user"}
    create = next(c for c in policy["changes"] if c["action"] == "create")
    assert create["attributes"][0] == {
        "path": "userName",
        "before": None,
        "after": "alice@contoso.com",
    }


def test_redacted_values_never_reach_the_document() -> None:
    plan = rich_plan()
    text = dumps(plan)
    assert SECRET not in text
    changes = plan_to_dict(plan)["policies"][0]["changes"]
    redacted = [
        a
        for c in changes
        if c["kind"] != "membership"
        for a in c["attributes"]
        if a["path"] == "employeeNumber"
    ]
    assert redacted == [
        {"path": "employeeNumber", "before": None, "after": "(redacted)", "redacted": True},
        {"path": "employeeNumber", "before": "(redacted)", "after": "(redacted)", "redacted": True},
    ]


def test_errors_key_only_when_there_are_errors() -> None:
    plan = whole_plan(plan_of(make_policy(), snapshot(), target_snapshot()))
    assert "errors" not in plan_to_dict(plan)["policies"][0]


def test_dumps_is_canonical_and_loads_round_trips() -> None:
    plan = rich_plan()
    text = dumps(plan)
    assert text == dumps(rich_plan())
    assert text.endswith("}\n") and "\n  " in text
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert loads(text) == plan_to_dict(plan)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a syncctl plan: invalid JSON at line 1 column 2"),
        ("[]", 'not a syncctl plan: "kind" is not "syncctl-plan"'),
        ('{"kind": "terraform"}', 'not a syncctl plan: "kind" is not "syncctl-plan"'),
        (
            '{"kind": "syncctl-plan", "format_version": "2"}',
            'unsupported plan format_version "2" (this syncctl reads "1")',
        ),
    ],
)
def test_loads_rejects_files_that_are_not_plans(text: str, message: str) -> None:
    with pytest.raises(PlanFileError) as caught:
        loads(text)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, SyncctlError) and caught.value.exit_code == 1


def test_loads_names_the_place_of_a_schema_violation() -> None:
    document = saved(rich_plan())
    document["policies"][0]["changes"][0]["action"] = "explode"
    with pytest.raises(
        PlanFileError, match=r"invalid syncctl plan at \$\.policies\[0\]\.changes\[0\]"
    ):
        loads(json.dumps(document))


def test_loads_rejects_a_tampered_summary_field() -> None:
    document = saved(rich_plan())
    del document["summary"]["delete"]
    with pytest.raises(PlanFileError) as caught:
        loads(json.dumps(document))
    assert str(caught.value) == 'invalid syncctl plan at $.summary: "delete" is a required property'


def test_loads_points_at_the_bad_field_of_a_change() -> None:
    document = saved(rich_plan())
    document["policies"][0]["changes"][2]["action"] = "explode"
    with pytest.raises(PlanFileError) as caught:
        loads(json.dumps(document))
    message = str(caught.value)
    assert message.startswith('invalid syncctl plan at $.policies[0].changes[2].action: "explode"')
    assert len(message) <= 250


# -- the digest (issue 10: a saved plan cannot switch off a safety check) --------------------


def test_the_digest_is_sha256_of_the_rest_in_canonical_json() -> None:
    text = dumps(rich_plan())
    document = json.loads(text)
    digest = document.pop("digest")
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert digest == "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()
    assert document_digest(document) == digest


def test_a_refused_plan_edited_to_not_refused_is_refused_as_modified() -> None:
    document = saved(rich_plan())
    assert document["policies"][0]["refused"] is not None
    document["policies"][0]["refused"] = None
    with pytest.raises(ModifiedPlanError) as caught:
        loads(json.dumps(document))
    assert str(caught.value) == (
        "the plan file was modified after it was made (digest mismatch); run plan again"
    )
    assert caught.value.exit_code == EXIT_REFUSED
    assert isinstance(caught.value, PlanFileError)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["policies"][0]["changes"].pop(),
        lambda d: d["policies"][0]["changes"][0].update(target_id="t-other"),
        lambda d: d.update(digest="sha256:" + "0" * 64),
        lambda d: d["policies"][0].update(tenant="evil\ud800.onmicrosoft.com"),
    ],
)
def test_any_edit_of_the_content_is_refused(edit: Callable[[dict[str, Any]], object]) -> None:
    document = saved(rich_plan())
    edit(document)
    with pytest.raises(ModifiedPlanError, match=r"digest mismatch"):
        loads(json.dumps(document))


def test_removing_the_digest_is_not_a_way_around_it() -> None:
    document = saved(rich_plan())
    del document["digest"]
    with pytest.raises(ModifiedPlanError, match=r"modified after it was made \(no digest\)"):
        loads(json.dumps(document))


def test_reformatting_a_plan_file_keeps_its_digest_valid() -> None:
    plan = rich_plan()
    reindented = json.dumps(json.loads(dumps(plan)), indent=4, ensure_ascii=True)
    assert loads(reindented) == plan_to_dict(plan)


def test_dumps_replaces_a_stale_digest_with_the_contents_one() -> None:
    document = plan_to_dict(rich_plan())
    text = dumps_dict({**document, "digest": "sha256:" + "0" * 64})
    assert loads(text) == document
