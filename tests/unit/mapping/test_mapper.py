"""Mapper: policy mappings + a source object -> the desired flat SCIM object."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.errors import MappingError, PolicyError
from syncctl.expressions import Deferred
from syncctl.mapping import MappedObject, Mapper, source_attributes
from syncctl.model import ObjectKind
from syncctl.policy.model import (
    ApplyMode,
    AttributeMapping,
    Deletion,
    FilterClause,
    FilterOp,
    Mappings,
    ObjectMappings,
    Policy,
    Source,
    SqliteTarget,
    StateConfig,
    Tenant,
)

USER, GROUP = ObjectKind.USER, ObjectKind.GROUP
ON_CREATE = ApplyMode.ON_CREATE

# POLICY.md's complete example, mappings.user
EXAMPLE = ObjectMappings(
    attributes=(
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("displayName", "[displayName]"),
        AttributeMapping("name.givenName", "[givenName]"),
        AttributeMapping("name.familyName", "[surname]"),
        AttributeMapping('emails[type eq "work"].value', "Coalesce([mail], [userPrincipalName])"),
        AttributeMapping("title", "[jobTitle]"),
        AttributeMapping("department", "[department]", default="Unassigned"),
        AttributeMapping("nickName", "ToLower([mailNickname])", apply=ON_CREATE),
    ),
    match=("userName",),
)

ADA = {
    "id": "u1",
    "userPrincipalName": "ada@contoso.com",
    "displayName": "Ada Lovelace",
    "givenName": "Ada",
    "surname": "Lovelace",
    "mail": None,
    "jobTitle": "Engineer",
    "department": None,
    "mailNickname": "ADA",
}


def mapper(*mappings: AttributeMapping, kind: ObjectKind = USER) -> Mapper:
    return Mapper("contoso-vault", ObjectMappings(attributes=mappings), kind)


def test_policy_example() -> None:
    mapped = Mapper("contoso-vault", EXAMPLE, USER).map("u1", ADA)
    assert mapped == MappedObject(
        source_id="u1",
        key="ada@contoso.com",
        attributes={
            "userName": "ada@contoso.com",
            "displayName": "Ada Lovelace",
            "name.givenName": "Ada",
            "name.familyName": "Lovelace",
            'emails[type eq "work"].value': "ada@contoso.com",
            "title": "Engineer",
            "department": "Unassigned",
            "nickName": "ada",
        },
        on_create=frozenset({"nickName"}),
        redacted=frozenset(),
    )


def test_nulls_are_absent_and_default_applies_to_empty() -> None:
    m = mapper(
        AttributeMapping("userName", "[upn]"),
        AttributeMapping("title", "[jobTitle]"),
        AttributeMapping("department", "[department]", default="Unassigned"),
    )
    mapped = m.map("u1", {"upn": "a@b", "jobTitle": "", "department": ""})
    assert mapped.attributes == {"userName": "a@b", "department": "Unassigned"}


def test_ignore_flow_drops_the_path_and_says_so() -> None:
    m = mapper(
        AttributeMapping("userName", "[upn]"),
        AttributeMapping("employeeNumber", "IgnoreFlowIfNullOrEmpty([employeeId])", default="0"),
    )
    dropped = m.map("u1", {"upn": "a@b"})
    assert "employeeNumber" not in dropped.attributes
    assert dropped.ignored == {"employeeNumber"}
    kept = m.map("u1", {"upn": "a@b", "employeeId": "7"})
    assert kept.attributes["employeeNumber"] == "7" and kept.ignored == frozenset()


def test_redact_marks_the_path() -> None:
    m = mapper(
        AttributeMapping("userName", "[upn]"),
        AttributeMapping("employeeNumber", "Redact([employeeId])"),
    )
    mapped = m.map("u1", {"upn": "a@b", "employeeId": "secret-ish"})
    assert mapped.redacted == {"employeeNumber"}
    assert mapped.attributes["employeeNumber"] == "secret-ish"  # the applier needs the value


def test_nondeterministic_on_create_values_are_deferred() -> None:
    m = mapper(
        AttributeMapping("userName", "[upn]"),
        AttributeMapping("nickName", 'Join("-", [upn], Guid())', apply=ON_CREATE),
        AttributeMapping("title", "RandomString(8,1,0,1,1)", apply=ON_CREATE),
    )
    first = m.map("u1", {"upn": "a@b"})
    second = m.map("u1", {"upn": "a@b"})
    nick = first.attributes["nickName"]
    assert isinstance(nick, Deferred)
    assert first == second  # plans stay deterministic
    assert repr(nick) == "(known after apply)"
    assert re.fullmatch(r"a@b-[0-9a-f-]{36}", nick.resolve())
    assert len(first.attributes["title"].resolve()) == 8
    assert first.on_create == {"nickName", "title"}
    assert m.map("u2", {"upn": "c@d"}).attributes["nickName"] != nick


def test_nondeterministic_without_on_create_is_refused() -> None:
    with pytest.raises(
        PolicyError, match=r'mappings.user.attributes\["nickName"\]: column 1: Guid\(\)'
    ):
        mapper(AttributeMapping("userName", "[upn]"), AttributeMapping("nickName", "Guid()"))


def test_bad_paths_and_expressions_are_all_reported() -> None:
    with pytest.raises(PolicyError) as info:
        mapper(
            AttributeMapping("userName", "[upn]"),
            AttributeMapping("externalId", "[id]"),
            AttributeMapping("title", "Lefty([a], 1)"),
        )
    messages = [d.message for d in info.value.diagnostics]
    assert len(messages) == 2
    assert "externalId" in messages[0] and "owned by syncctl" in messages[0]
    assert 'unknown function "Lefty"' in messages[1]


def test_evaluation_errors_name_policy_mapping_object_function() -> None:
    m = mapper(
        AttributeMapping("userName", "[upn]"), AttributeMapping("title", "ToLower(CDate([hired]))")
    )
    with pytest.raises(MappingError) as info:
        m.map("u1", {"upn": "a@b", "hired": "next monday"})
    error = info.value
    assert (error.policy, error.mapping, error.obj, error.function) == (
        "contoso-vault",
        "title",
        "u1",
        "CDate",
    )
    assert str(error).startswith('policy "contoso-vault", mapping "title", object u1 in CDate(): ')
    # one bad user does not poison the mapper for the others
    assert (
        m.map("u2", {"upn": "c@d", "hired": "2020-01-02"}).attributes["title"]
        == "1/2/2020 12:00:00 am"
    )


@pytest.mark.parametrize("upn", [None, ""])
def test_user_without_a_key_is_an_error(upn: Any) -> None:
    m = mapper(AttributeMapping("userName", "[upn]"))
    with pytest.raises(MappingError, match="userName is empty") as info:
        m.map("u1", {"upn": upn})
    assert info.value.mapping == "userName"


def test_key_cannot_be_deferred() -> None:
    m = mapper(AttributeMapping("userName", "Guid()", apply=ON_CREATE))
    with pytest.raises(MappingError, match=r"userName cannot use Guid\(\)"):
        m.map("u1", {})


def test_group_key_falls_back_to_the_source_display_name() -> None:
    m = mapper(kind=GROUP)
    assert m.map("g1", {"displayName": "Admins"}).key == "Admins"


def test_groups_key_on_display_name() -> None:
    m = mapper(AttributeMapping("displayName", 'Append([displayName], "-app")'), kind=GROUP)
    assert m.map("g1", {"displayName": "Admins"}).key == "Admins-app"
    with pytest.raises(MappingError):
        m.map("g2", {"displayName": None})


def test_datetimes_leave_in_entra_form_and_lists_pass_through() -> None:
    m = mapper(
        AttributeMapping("userName", "[upn]"),
        AttributeMapping("title", "CDate([hired])"),
        AttributeMapping('emails[type eq "other"].value', 'Split([aliases], ";")'),
        AttributeMapping("manager", "[manager]"),
    )
    mapped = m.map(
        "u1", {"upn": "a", "hired": "2020-03-16-07:00", "aliases": "x;y", "manager": "m1"}
    )
    assert mapped.attributes["title"] == "3/16/2020 7:00:00 AM"
    assert mapped.attributes['emails[type eq "other"].value'] == ["x", "y"]
    assert mapped.attributes["manager"] == "m1"  # a reference passes through unchanged


def test_source_attributes_of_a_mapper() -> None:
    m = Mapper("p", EXAMPLE, USER)
    assert m.source_attributes == {
        "userPrincipalName", "displayName", "givenName", "surname", "mail", "jobTitle",
        "department", "mailNickname",
    }  # fmt: skip


def _policy(user: ObjectMappings, filters: tuple[tuple[FilterClause, ...], ...]) -> Policy:
    return Policy(
        version=1,
        name="contoso-vault",
        path=Path("/p/policy.yaml"),
        sha256="0" * 64,
        tenant=Tenant(id="contoso.onmicrosoft.com"),
        source=Source(scope_groups=("Users",), filters=filters),
        target=SqliteTarget(path=Path("/p/db")),
        mappings=Mappings(
            user=user,
            group=ObjectMappings(
                attributes=(AttributeMapping("displayName", "ToUpper([mailNickname])"),)
            ),
        ),
        deletion=Deletion(),
        state=StateConfig(path=Path("/p/state.json")),
    )


def test_source_attributes_of_a_policy_include_filters_and_essentials() -> None:
    filters = ((FilterClause("employeeType", FilterOp.EQUALS, "FTE"),),)
    needed = source_attributes(_policy(EXAMPLE, filters))
    assert needed[USER] >= {"id", "accountEnabled", "userType", "employeeType", "mailNickname"}
    assert needed[GROUP] == {
        "id", "displayName", "groupTypes", "securityEnabled", "mailEnabled", "mailNickname",
    }  # fmt: skip


@given(
    st.fixed_dictionaries(
        {},
        optional={
            k: st.one_of(st.none(), st.text(max_size=6))
            for k in ("userPrincipalName", "displayName", "givenName", "surname", "mail",
                      "jobTitle", "department", "mailNickname")
        },
    )
)  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_mapping_is_deterministic(source: dict[str, Any]) -> None:
    m = Mapper("p", EXAMPLE, USER)
    try:
        first = m.map("u1", source)
    except MappingError as exc:
        with pytest.raises(MappingError) as again:
            m.map("u1", dict(reversed(list(source.items()))))
        assert str(again.value) == str(exc)
        return
    assert m.map("u1", dict(reversed(list(source.items())))) == first
    assert all(v not in (None, "", []) for v in first.attributes.values())
