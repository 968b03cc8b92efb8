"""What real tenants send, against the TLS emulator: groups holding devices, service
principals, contacts and groups; users with limited information; 403s naming the missing
permission; the throttle-limit warning header.

``test_validate_check_names_the_missing_permission_and_feature`` registers an app with chosen
roles (``emu.identity.add_application``); its last assertion needs the emulator's permission
model to answer 403 for a missing permission (not merged when it was written).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncctl.emulator import Emulator
from syncctl.errors import GraphError, PermissionsMissing
from syncctl.policy.model import ClientSecretCredential, SecretRef
from syncctl.source import check_source, read_source
from syncctl.source.auth import TokenProvider
from syncctl.source.clouds import graph_base
from syncctl.source.graph import GraphClient, Request
from syncctl.source.http import build_http_client
from tests.integration.source.conftest import emulator_policy, graph_requests

SCOPE = "Password Manager Users"
APP_SECRET_ENV = "SYNCCTL_TEST_APP_SECRET"


@pytest.fixture
def add_other_kinds(emu: Emulator) -> Iterator[Callable[[], list[str]]]:
    """Adds a device, a service principal, a contact and a new (empty) nested group to the
    scope group when called; returns their ids. Undone after the test."""
    tenant = emu.tenant
    group = tenant.group_by_name(SCOPE)
    assert group is not None
    added: list[str] = []

    def add() -> list[str]:
        added.extend(
            tenant.create_object(kind, displayName=f"not a user: {kind}")
            for kind in ("device", "servicePrincipal", "orgContact")
        )
        added.append(tenant.create_group(displayName="Nested Inside Scope"))
        for member in added:
            tenant.add_member(group["id"], member)
        return list(added)

    yield add
    for member in added:
        tenant.remove_member(group["id"], member)
        if tenant.kind_of(member) == "group":
            tenant.hard_delete_group(member)
        else:
            tenant.delete_object(member)


@pytest.mark.parametrize("nested", [False, True])
def test_non_user_members_are_not_taken_for_users(
    emu: Emulator, add_other_kinds: Callable[[], list[str]], nested: bool
) -> None:
    policy = emulator_policy(emu, nested=nested)
    before = read_source(policy, managed_ids=())
    others = add_other_kinds()
    after = read_source(policy, managed_ids=())
    # A device, service principal, contact or group read as a user would be provisioned
    # (with null attributes) into the target; the users read are exactly as before.
    assert after.users == before.users and after.users
    assert not set(others) & {m for g in after.groups.values() for m in g.members}


def test_cast_list_items_need_no_odata_type(emu: Emulator) -> None:
    """Microsoft's examples of /members/microsoft.graph.user carry no @odata.type on items:
    the reader must not need (or filter on) it."""

    def strip_types(body: Any) -> Any:
        if isinstance(body, dict) and isinstance(body.get("value"), list):
            return {
                **body,
                "value": [
                    {k: v for k, v in item.items() if k != "@odata.type"} for item in body["value"]
                ],
            }
        return body

    policy = emulator_policy(emu, groups=())
    expected = read_source(policy, managed_ids=())
    emu.faults.add(path="microsoft.graph.user", status=None, rewrite=strip_types)
    assert read_source(policy, managed_ids=()) == expected
    assert expected.users


def test_users_with_limited_information_fail_naming_user_read_all(emu: Emulator) -> None:
    """GroupMember.Read.All without User.Read.All: Graph returns each member user with its id
    and @odata.type only (permissions-overview.md). Never provisioned as empty users."""

    def limit(body: Any) -> Any:
        if isinstance(body, dict) and isinstance(body.get("value"), list):
            return {
                **body,
                "value": [
                    {"@odata.type": "#microsoft.graph.user", "id": item["id"]}
                    for item in body["value"]
                ],
            }
        return body

    emu.faults.add(path="microsoft.graph.user", status=None, rewrite=limit)
    with pytest.raises(GraphError) as caught:
        read_source(emulator_policy(emu, groups=()), managed_ids=())
    text = str(caught.value)
    assert "limited information" in text
    assert "the app registration lacks User.Read.All (grant it and admin-consent" in text


def test_403_on_get_by_ids_names_directory_read_all(emu: Emulator) -> None:
    emu.faults.add(path="getByIds", method="POST", status=403, times=1)
    policy = emulator_policy(emu)
    with pytest.raises(GraphError) as caught:
        read_source(policy, managed_ids=[str(uuid.uuid4())])
    error = caught.value
    assert str(error).startswith(
        "POST /directoryObjects/getByIds: 403 Authorization_RequestDenied: the app registration "
        "lacks Directory.Read.All (grant it and admin-consent; needed to tell why a managed "
        "user or group left scope)"
    )
    # Both ids Microsoft support asks for, as Graph returned and as syncctl sent them.
    assert error.request_id and f"request-id {error.request_id}" in str(error)
    client_id = getattr(error, "client_request_id", None)
    assert isinstance(client_id, str) and uuid.UUID(client_id)
    assert f"client-request-id {client_id}" in str(error)


def test_403_on_a_batched_member_list_names_the_member_permission(emu: Emulator) -> None:
    emu.faults.add(path="microsoft.graph.user", status=403)
    with pytest.raises(GraphError) as caught:
        read_source(emulator_policy(emu, nested=False), managed_ids=())
    assert "/members/microsoft.graph.user: 403 Authorization_RequestDenied" in str(caught.value)
    assert "lacks GroupMember.Read.All" in str(caught.value)


def test_throttle_warning_spaces_requests_out_before_any_429(emu: Emulator) -> None:
    """The emulator sends x-ms-throttle-limit-percentage from 0.8 of its budget, as Graph
    does; the client spaces the next requests by (usage - 0.8) s and is never throttled."""
    emu.throttle(resource_units_per_10s=20, window_seconds=60.0)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    policy = emulator_policy(emu)
    http = build_http_client(policy.tenant.ca_bundle)
    try:
        client = GraphClient(
            http,
            graph_base(policy.tenant),
            TokenProvider(policy.tenant, http),
            sleep=sleep,
            clock=lambda: now[0],
        )
        request = Request("/groups", {"$select": "id", "$top": "999"})  # 1 RU each
        for _ in range(20):
            client.get_all(request)
    finally:
        http.close()
    assert client.throttle_usage == pytest.approx(1.0)
    # Warned from the 16th answer on; spacing is (usage - 0.8) s, at most 0.2 s below the
    # limit (exact values: tests/unit/source/test_graph_realities.py).
    assert sleeps and all(0 < pause <= 0.2 + 1e-9 for pause in sleeps)
    assert client.paced_seconds == pytest.approx(sum(sleeps))
    # No request was answered 429 and sent again.
    assert len([r for r in graph_requests(emu) if r[1] == "/v1.0/groups"]) == 20


def test_validate_check_passes_with_the_default_app(emu: Emulator) -> None:
    # The default app holds Directory.Read.All, GroupMember.Read.All and User.Read.All.
    assert check_source(emulator_policy(emu)) == ()


def test_validate_check_names_the_missing_permission_and_feature(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Needs the emulator's permission model (its 403 for a missing permission)."""
    app = emu.identity.add_application(roles=("GroupMember.Read.All", "User.Read.All"))
    monkeypatch.setenv(APP_SECRET_ENV, app.client_secret)
    base = emulator_policy(emu)
    policy = dataclasses.replace(
        base,
        tenant=dataclasses.replace(
            base.tenant,
            client_id=app.client_id,
            credential=ClientSecretCredential(SecretRef(env=APP_SECRET_ENV)),
        ),
    )
    with pytest.raises(PermissionsMissing) as caught:
        check_source(policy)
    assert caught.value.lines == (
        "the app registration lacks the application permission Directory.Read.All, which "
        "removal reasons needs to tell why a managed user or group left scope "
        "(https://learn.microsoft.com/graph/api/directoryobject-getbyids); grant it and "
        "admin-consent",
    )
    # The run fails on the same permission, named from the emulator's 403.
    with pytest.raises(GraphError, match=r"lacks Directory\.Read\.All"):
        read_source(policy, managed_ids=[str(uuid.uuid4())])
