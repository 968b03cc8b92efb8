"""Flat SCIM paths <-> SCIM resources (RFC 7643)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.model import ObjectKind
from syncctl.scimpath import (
    ENTERPRISE_USER,
    GROUP_SCHEMA,
    USER_SCHEMA,
    from_resource,
    patch_path,
    to_resource,
    validate_path,
)

USER, GROUP = ObjectKind.USER, ObjectKind.GROUP

VALID_USER_PATHS = [
    "userName", "displayName", "title", "nickName", "locale", "timezone", "preferredLanguage",
    "profileUrl", "userType", "name.givenName", "name.familyName", "name.formatted",
    "name.middleName", "name.honorificPrefix", "name.honorificSuffix",
    'emails[type eq "work"].value', 'emails[type eq "home"].value',
    'phoneNumbers[type eq "mobile"].value', 'phoneNumbers[type eq "work"].value',
    'addresses[type eq "work"].locality', 'addresses[type eq "work"].postalCode',
    'addresses[type eq "work"].streetAddress', 'addresses[type eq "work"].country',
    "employeeNumber", "costCenter", "organization", "division", "department", "manager",
    "manager.displayName",
    f"{ENTERPRISE_USER}:department", f"{ENTERPRISE_USER}:manager",
    f"{USER_SCHEMA}:userName",
    "urn:ietf:params:scim:schemas:extension:acme:2.0:User:badgeId",
]  # fmt: skip


@pytest.mark.parametrize("path", VALID_USER_PATHS)
def test_valid_user_paths(path: str) -> None:
    assert validate_path(path, USER) is None


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("externalId", "owned by syncctl"),
        ("active", "owned by syncctl"),
        ("id", "assigned by the target"),
        ("meta", "read-only"),
        ("members", "cannot be mapped"),
        ("groups", "read-only"),
        ("password", "never provisioned"),
        (f"{USER_SCHEMA}:active", "owned by syncctl"),
        ("username", 'did you mean "userName"'),
        ("dept", "unknown SCIM user attribute"),
        ("emails", "multi-valued"),
        ("emails.value", "multi-valued"),
        ('emails[type eq "work"]', "name a sub-attribute"),
        ('emails[type eq "work"].type', "fixed by the filter"),
        ('emails[type eq "work"].valu', 'did you mean "value"'),
        ('emails[kind eq "work"].value', "cannot filter"),
        ('title[type eq "work"].value', "not multi-valued"),
        ("name", "complex"),
        ("name.first", "unknown sub-attribute"),
        ("title.value", "no sub-attribute"),
        (f"{ENTERPRISE_USER}:badge", "unknown enterprise"),
        (f"{GROUP_SCHEMA}:displayName", "does not apply to users"),
        ("emails[type eq 'work'].value", "not a SCIM attribute path"),
        ("", "not a SCIM attribute path"),
        ("a b", "not a SCIM attribute path"),
    ],
)
def test_refused_user_paths(path: str, fragment: str) -> None:
    message = validate_path(path, USER)
    assert message is not None and fragment in message
    assert "\n" not in message


def test_group_paths() -> None:
    assert validate_path("displayName", GROUP) is None
    assert validate_path(f"{GROUP_SCHEMA}:displayName", GROUP) is None
    assert validate_path("urn:example:ext:Group:code", GROUP) is None
    for path, fragment in [
        ("members", "cannot be mapped"),
        ("externalId", "owned by syncctl"),
        ("department", "does not apply to groups"),
        ("userName", "unknown SCIM group attribute"),
        (f"{USER_SCHEMA}:displayName", "does not apply to groups"),
        ("urn:example:ext:User:code", "not a Group extension"),
    ]:
        message = validate_path(path, GROUP)
        assert message is not None and fragment in message, path


def test_to_resource_builds_rfc7643_shape() -> None:
    flat = {
        "userName": "ada@contoso.com",
        "name.givenName": "Ada",
        "name.familyName": "Lovelace",
        'emails[type eq "work"].value': "ada@contoso.com",
        'addresses[type eq "work"].locality': "London",
        'addresses[type eq "work"].postalCode': "N1",
        "department": "R&D",
        "manager": "6f1c",
        "title": None,
    }
    assert to_resource(flat, USER) == {
        "schemas": [USER_SCHEMA, ENTERPRISE_USER],
        "userName": "ada@contoso.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"type": "work", "value": "ada@contoso.com"}],
        "addresses": [{"type": "work", "locality": "London", "postalCode": "N1"}],
        ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "6f1c"}},
    }


def test_to_resource_groups_and_no_engine_attributes() -> None:
    resource = to_resource({"displayName": "Vault Admins"}, GROUP)
    assert resource == {"schemas": [GROUP_SCHEMA], "displayName": "Vault Admins"}


def test_to_resource_is_deterministic_whatever_the_input_order() -> None:
    a = {'emails[type eq "home"].value': "h", 'emails[type eq "work"].value': "w", "userName": "u"}
    b = dict(reversed(list(a.items())))
    assert to_resource(a, USER) == to_resource(b, USER)
    assert list(to_resource(a, USER)) == list(to_resource(b, USER))


def test_from_resource_reads_servers_loosely() -> None:
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "UserName": "ada",  # attribute names are case-insensitive (RFC 7643 §2.1)
        "emails": [
            {"type": "home", "value": "h@x"},
            {"type": "Work", "value": "w1@x"},
            {"type": "work", "value": "w2@x", "primary": True},
        ],
        ENTERPRISE_USER.lower(): {"manager": "m-id", "department": None},
        "title": None,
    }
    paths = [
        "userName",
        'emails[type eq "work"].value',
        "manager",
        "department",
        "title",
        "nickName",
    ]
    assert from_resource(resource, paths) == {
        "userName": "ada",
        'emails[type eq "work"].value': "w2@x",  # the primary one
        "manager": "m-id",  # some servers flatten manager to its id
    }


def test_patch_paths() -> None:
    assert patch_path("department") == f"{ENTERPRISE_USER}:department"
    assert patch_path("manager") == f"{ENTERPRISE_USER}:manager.value"
    assert patch_path(f"{ENTERPRISE_USER}:manager") == f"{ENTERPRISE_USER}:manager.value"
    assert patch_path('emails[type eq "work"].value') == 'emails[type eq "work"].value'
    assert patch_path("name.givenName") == "name.givenName"
    assert patch_path("urn:x:ext:User:badge") == "urn:x:ext:User:badge"


@given(
    st.dictionaries(
        st.sampled_from([*VALID_USER_PATHS[:-4], VALID_USER_PATHS[-1]]),
        st.text(min_size=1, max_size=10),
        max_size=12,
    )
)
@settings(max_examples=200, deadline=None)
def test_round_trip(flat: dict[str, str]) -> None:
    resource = to_resource(flat, USER)
    assert "id" not in resource and "externalId" not in resource and "active" not in resource
    assert from_resource(resource, flat) == flat
