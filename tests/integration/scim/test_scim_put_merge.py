"""The PUT fallback's resource surgery (servers without usable PATCH): pure helpers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncctl.scimpath import ENTERPRISE_USER
from syncctl.targets.scim_resources import merge_elements, remove_path

RESOURCE: dict[str, Any] = {
    "userName": "a@x",
    "title": "Boss",
    "name": {"givenName": "A", "familyName": "B"},
    "emails": [{"type": "work", "value": "a@x"}, {"type": "home", "value": "a@home"}],
    ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m1"}},
}


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("title", lambda r: "title" not in r),
        ("name.givenName", lambda r: r["name"] == {"familyName": "B"}),
        ('emails[type eq "work"].value', lambda r: r["emails"] == [RESOURCE["emails"][1]]),
        ('emails[type eq "WORK"].value', lambda r: r["emails"] == [RESOURCE["emails"][1]]),
        (
            f"{ENTERPRISE_USER}:department",
            lambda r: r[ENTERPRISE_USER] == {"manager": {"value": "m1"}},
        ),
        (f"{ENTERPRISE_USER}:manager.value", lambda r: r[ENTERPRISE_USER]["manager"] == {}),
        ("nickName", lambda r: r == RESOURCE),
    ],
)
def testremove_path(path: str, check: Any) -> None:
    resource = copy.deepcopy(RESOURCE)
    remove_path(resource, path)
    assert check(resource)


def test_merge_replaces_same_type_and_keeps_others() -> None:
    merged = merge_elements(RESOURCE["emails"], [{"type": "work", "value": "new@x"}])
    assert merged == [{"type": "home", "value": "a@home"}, {"type": "work", "value": "new@x"}]


def test_merge_replaces_untyped_primary_and_keeps_primary() -> None:
    """django-scim2 stores one untyped primary email: it is the one syncctl wrote."""
    current = [{"value": "old@x", "primary": True}]
    merged = merge_elements(current, [{"type": "work", "value": "new@x"}])
    assert merged == [{"type": "work", "value": "new@x", "primary": True}]
