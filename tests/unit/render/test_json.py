"""The JSON renderer writes the plan document canonically and it validates against the schema."""

from __future__ import annotations

import json

import jsonschema

from syncctl.plan.planfile import dumps, plan_schema, plan_to_dict
from syncctl.render import json as json_render
from tests.unit.plan.support import (
    make_policy,
    plan_of,
    snapshot,
    source_user,
    target_snapshot,
    whole_plan,
)


def test_json_render_is_the_plan_file_text_and_schema_valid() -> None:
    plan = whole_plan(
        plan_of(make_policy(), snapshot([source_user("u1", "a@x.com")]), target_snapshot())
    )
    rendered = json_render.render(plan_to_dict(plan))
    assert rendered == dumps(plan)
    document = json.loads(rendered)
    jsonschema.validate(document, plan_schema())
    assert document["policies"][0]["changes"][0]["address"] == "user/a@x.com"
