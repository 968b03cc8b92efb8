"""Filter values are always one JSON string literal: properties, then the real server's view."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncctl.targets import scim_filter

# A filter `attr eq <literal>`: the literal must be exactly one JSON string.
_EQ = re.compile(r'^(?P<attr>[\w.:]+) eq (?P<literal>".*")$', re.DOTALL)


@given(st.text())
def test_eq_literal_round_trips_any_string(value: str) -> None:
    text = scim_filter.eq("userName", value)
    match = _EQ.match(text)
    assert match is not None
    assert json.loads(match["literal"]) == value


@given(st.text())
def test_literal_never_closes_early(value: str) -> None:
    """Inside the literal every quote is escaped, so the filter grammar sees one token."""
    body = scim_filter.literal(value)[1:-1]
    unescaped_quote = re.search(r'(?<!\\)(?:\\\\)*"', body)
    assert unescaped_quote is None


@given(st.dictionaries(st.sampled_from(["userName", "displayName", "externalId"]), st.text()))
def test_all_eq_is_sorted_and_complete(values: dict[str, str]) -> None:
    expected = [
        f"{name} eq {json.dumps(values[name], ensure_ascii=False)}" for name in sorted(values)
    ]
    assert scim_filter.all_eq(values) == " and ".join(expected)


@pytest.mark.parametrize("attribute", ['userName" or "', "a b", "", "members[value eq 1]"])
def test_attribute_paths_are_not_taken_from_data(attribute: str) -> None:
    with pytest.raises(ValueError):
        scim_filter.eq(attribute, "x")


def test_member_path() -> None:
    assert scim_filter.member_path('a"b') == 'members[value eq "a\\"b"]'


HOSTILE = [
    'x" or userName pr or userName eq "y',
    'back\\slash" or "1" eq "1',
    'quote"only',
    "new\nline",
    "ünïcødé ✓",
    "trailing\\",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_scim2_server_matches_exactly_the_hostile_value(raw: httpx.Client, name: str) -> None:
    assert raw.post("/Users", json={"userName": "bystander@contoso.test"}).status_code == 201
    assert raw.post("/Users", json={"userName": name}).status_code == 201
    response = raw.get("/Users", params={"filter": scim_filter.eq("userName", name)})
    assert response.status_code == 200, response.text
    assert [r["userName"] for r in response.json()["Resources"]] == [name]
