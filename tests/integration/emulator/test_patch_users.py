"""PATCH /users/{id} as writeback uses it: Entra's password policy (400 without the value),
the permissions a password needs (403), what a successful reset leaves behind (a newer
lastPasswordChangeDateTime, a hash to check against) and the writes hook."""

from __future__ import annotations

import json

import httpx
import pytest

from syncctl.emulator import Emulator
from syncctl.emulator.identity import DEFAULT_ROLES
from syncctl.emulator.writes import COMPLEXITY_MESSAGE, password_meets_policy

from .conftest import Graph, assert_graph_error

GOOD = "Tr0ub4dor&3-horse"


def _patch(
    emu: Emulator, http: httpx.Client, token: str, user: str, body: object
) -> httpx.Response:
    return http.patch(
        f"{emu.graph}/v1.0/users/{user}", headers={"Authorization": f"Bearer {token}"}, json=body
    )


def _app_token(emu: Emulator, roles: list[str]) -> str:
    client_id, _ = emu.add_application(roles=[*DEFAULT_ROLES, *roles])
    return emu.mint_token(client_id=client_id)


@pytest.fixture
def user(emu: Emulator) -> str:
    return sorted(emu.tenant.users)[3]


@pytest.mark.parametrize(
    ("password", "meets"),
    [
        ("Abcdefg1", True),  # 8 characters, three kinds
        ("abcdef1!", True),  # lower, digit, symbol
        ("Abcdef1", False),  # 7 characters
        ("abcdefgh1", False),  # two kinds only
        ("ABCDEFGH!", False),  # two kinds only
        ("Abcdefgh1é", False),  # "Characters not allowed: Unicode characters"
        ("Ab1 " + "x" * 252, True),  # 256, blank space allowed
        ("Ab1 " + "x" * 253, False),  # 257
    ],
)
def test_password_policy(password: str, meets: bool) -> None:
    assert password_meets_policy(password) is meets


@pytest.mark.parametrize("weak", ["short1A", "alllowercaseletters", "NoDigitsOrSymbols"])
def test_weak_password_is_400_without_the_value(
    emu: Emulator, http: httpx.Client, user: str, weak: str
) -> None:
    token = _app_token(emu, ["User-PasswordProfile.ReadWrite.All"])
    before = emu.tenant.users[user]["lastPasswordChangeDateTime"]
    emu.tenant.advance(60)
    response = _patch(emu, http, token, user, {"passwordProfile": {"password": weak}})
    error = assert_graph_error(response, 400, "Request_BadRequest")
    assert error["message"] == COMPLEXITY_MESSAGE
    assert weak not in response.text
    assert emu.tenant.users[user]["lastPasswordChangeDateTime"] == before
    assert not emu.tenant.password_matches(user, weak)
    assert emu.tenant.writes == []


def test_weak_password_refuses_the_whole_patch(
    emu: Emulator, http: httpx.Client, user: str
) -> None:
    token = _app_token(emu, ["User.ReadWrite.All"])
    job = emu.tenant.users[user].get("jobTitle")
    response = _patch(
        emu, http, token, user, {"jobTitle": "Changed", "passwordProfile": {"password": "weak"}}
    )
    assert_graph_error(response, 400, "Request_BadRequest")
    assert emu.tenant.users[user].get("jobTitle") == job
    assert emu.tenant.writes == []


@pytest.mark.parametrize(
    "profile",
    [
        {"password": GOOD, "forceChangePasswordNextSignIn": "yes"},
        {"password": GOOD, "mustChange": True},
        {"password": 12345678},
        {"forceChangePasswordNextSignIn": True},
    ],
)
def test_malformed_password_profile_is_400(
    emu: Emulator, http: httpx.Client, user: str, profile: dict[str, object]
) -> None:
    token = _app_token(emu, ["User.ReadWrite.All"])
    response = _patch(emu, http, token, user, {"passwordProfile": profile})
    error = assert_graph_error(response, 400, "Request_BadRequest")
    assert GOOD not in response.text
    assert "passwordProfile" in error["message"]


@pytest.mark.parametrize(
    ("roles", "body", "allowed"),
    [
        ([], {"passwordProfile": {"password": GOOD}}, False),
        (["Directory.ReadWrite.All"], {"passwordProfile": {"password": GOOD}}, False),
        (["User-PasswordProfile.ReadWrite.All"], {"passwordProfile": {"password": GOOD}}, True),
        (["User.ReadWrite.All"], {"passwordProfile": {"password": GOOD}}, True),
        # the password's own permission does not write other properties
        (
            ["User-PasswordProfile.ReadWrite.All"],
            {"employeeId": "E1", "passwordProfile": {"password": GOOD}},
            False,
        ),
        (["User.ReadWrite.All"], {"employeeId": "E1", "passwordProfile": {"password": GOOD}}, True),
        ([], {"employeeId": "E1"}, False),
        (["User.ReadWrite.All"], {"employeeId": "E1"}, True),
    ],
)
def test_password_permissions(
    emu: Emulator,
    http: httpx.Client,
    user: str,
    roles: list[str],
    body: dict[str, object],
    allowed: bool,
) -> None:
    token = _app_token(emu, roles)
    response = _patch(emu, http, token, user, body)
    if allowed:
        assert response.status_code == 204, response.text
        assert emu.tenant.writes == [(user, tuple(sorted(body)))]
    else:
        error = assert_graph_error(response, 403, "Authorization_RequestDenied")
        assert error["message"] == "Insufficient privileges to complete the operation."
        assert GOOD not in response.text
        assert emu.tenant.writes == []
        assert not emu.tenant.password_matches(user, GOOD)


def test_password_reset_moves_last_change_and_keeps_only_a_hash(
    emu: Emulator, http: httpx.Client, user: str
) -> None:
    token = _app_token(emu, ["User-PasswordProfile.ReadWrite.All"])
    before = emu.tenant.users[user]["lastPasswordChangeDateTime"]
    emu.tenant.advance(3600)
    profile = {"password": GOOD, "forceChangePasswordNextSignIn": True}
    assert _patch(emu, http, token, user, {"passwordProfile": profile}).status_code == 204
    after = emu.tenant.users[user]["lastPasswordChangeDateTime"]
    assert after > before
    assert after == emu.tenant.users[user]["lastPasswordChangeDateTime"]
    assert emu.tenant.password_matches(user, GOOD)
    assert not emu.tenant.password_matches(user, GOOD.upper())
    assert not emu.tenant.password_matches(sorted(emu.tenant.users)[0], GOOD)
    assert emu.tenant.must_change_password(user) is True
    # the value is in no document, no user and no request log
    assert GOOD not in json.dumps(emu.tenant.to_document())
    assert GOOD not in repr(emu.tenant.__dict__)
    assert all(GOOD not in " ".join(r) for r in emu.recorded())
    # Graph returns the lastPasswordChangeDateTime it set
    shown = http.get(
        f"{emu.graph}/v1.0/users/{user}?$select=lastPasswordChangeDateTime",
        headers={"Authorization": f"Bearer {emu.mint_token()}"},
    ).json()
    assert shown["lastPasswordChangeDateTime"] == after

    emu.tenant.advance(60)
    second = "An0ther-Passw0rd"
    assert (
        _patch(emu, http, token, user, {"passwordProfile": {"password": second}}).status_code == 204
    )
    assert emu.tenant.users[user]["lastPasswordChangeDateTime"] > after
    assert emu.tenant.password_matches(user, second)
    assert not emu.tenant.password_matches(user, GOOD)
    assert emu.tenant.must_change_password(user) is False


def test_writes_hook_lists_each_patch_with_property_names_only(
    writer_graph: Graph, emu: Emulator
) -> None:
    first, second = sorted(emu.tenant.users)[5:7]
    assert emu.tenant.writes == []
    for user_id, body in (
        (first, {"jobTitle": "Engineer", "employeeId": "E-7"}),
        (second, {"passwordProfile": {"password": GOOD}, "department": "Ops"}),
        (first, {"jobTitle": "Engineer"}),  # unchanged value: still a write Graph accepted
    ):
        response = writer_graph.request("PATCH", f"/users/{user_id}", json=body)
        assert response.status_code == 204, response.text
    assert writer_graph.request("PATCH", f"/users/{first}", json={"nope": 1}).status_code == 400
    assert emu.tenant.writes == [
        (first, ("employeeId", "jobTitle")),
        (second, ("department", "passwordProfile")),
        (first, ("jobTitle",)),
    ]
    assert GOOD not in repr(emu.tenant.writes)


@pytest.fixture
def writer_graph(graph: Graph, emu: Emulator) -> Graph:
    emu.set_roles([*DEFAULT_ROLES, "User.ReadWrite.All"])
    return graph


def test_patch_of_a_deleted_user_is_404(emu: Emulator, http: httpx.Client, user: str) -> None:
    token = _app_token(emu, ["User.ReadWrite.All"])
    emu.tenant.soft_delete_user(user)
    response = _patch(emu, http, token, user, {"passwordProfile": {"password": GOOD}})
    assert_graph_error(response, 404, "Request_ResourceNotFound")
    assert GOOD not in response.text
    assert emu.tenant.writes == []
