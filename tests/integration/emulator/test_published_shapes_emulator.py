"""The emulator's answers against the shapes Microsoft publishes in
microsoft-graph-docs-contrib (each test names the page): cast member lists, members that are
neither users nor groups, limited-information members, delta's never-set properties,
fractional Retry-After, error bodies and the 501 for properties kept outside Entra ID."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncctl.emulator import EmulatorTenant, generate_tenant
from syncctl.emulator import graph as graph_module
from syncctl.emulator.faults import Faults
from syncctl.emulator.graph import GraphService
from syncctl.emulator.identity import Identity
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.responses import Response
from syncctl.emulator.schema import (
    DEVICE_DEFAULT,
    ODATA_TYPE,
    ORG_CONTACT_DEFAULT,
    OTHER_KINDS,
    SERVICE_PRINCIPAL_DEFAULT,
)
from syncctl.emulator.tenant import tenant_from_document
from syncctl.emulator.throttle import ResourceUnitBudget, format_retry_after

from .conftest import Graph, assert_graph_error

BASE = "https://emulator.test"
SCOPE = "Password Manager Users"


class Service:
    """The Graph routes in-process: no TLS or sign-in per call, same code path as HTTP."""

    def __init__(self, tenant: EmulatorTenant, budget: ResourceUnitBudget | None = None) -> None:
        self.tenant = tenant
        identity = Identity(BASE, tenant.tenant_id, tenant.domain)
        self.graph = GraphService(tenant, BASE, identity, Faults(), budget or ResourceUnitBudget())
        self.token = identity.mint_token()

    def call(self, path: str, *, eventual: bool = False, **headers: str) -> Response:
        sent = {"Authorization": f"Bearer {self.token}", **headers}
        if eventual:
            sent["ConsistencyLevel"] = "eventual"
        return self.graph.handle(GraphRequest.from_target("GET", f"/v1.0{path}", sent))

    def ok(self, path: str, *, eventual: bool = False) -> dict[str, Any]:
        response = self.call(path, eventual=eventual)
        assert response.status == 200, response.body
        body: dict[str, Any] = json.loads(response.body)
        return body

    def delta(self, link: str) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.ok(link.removeprefix(BASE + "/v1.0"))
            items.extend(page["value"])
            if "@odata.nextLink" not in page:
                return items, str(page["@odata.deltaLink"])
            link = page["@odata.nextLink"]


@pytest.fixture
def service() -> Service:
    return Service(generate_tenant(users=120, groups=20, seed=11))


def _group(tenant: EmulatorTenant, name: str) -> str:
    group = tenant.group_by_name(name)
    assert group is not None
    return str(group["id"])


def _others(tenant: EmulatorTenant, group_id: str) -> dict[str, str]:
    return {m: k for m in tenant.members[group_id] if (k := tenant.kind_of(m)) in OTHER_KINDS}


# ---- group-list-members.md / group-list-transitivemembers.md --------------------------------
@pytest.mark.parametrize("relation", ["members", "transitiveMembers"])
def test_user_cast_lists_carry_no_odata_type(service: Service, relation: str) -> None:
    scope = _group(service.tenant, SCOPE)
    page = service.ok(
        f"/groups/{scope}/{relation}/microsoft.graph.user?$count=true&$select=id,displayName",
        eventual=True,
    )
    assert page["value"] and all(set(u) == {"id", "displayName"} for u in page["value"])
    assert page["@odata.context"] == f"{BASE}/v1.0/$metadata#users(id,displayName)"
    assert page["@odata.count"] == len(page["value"])


def test_group_cast_lists_carry_no_odata_type(service: Service) -> None:
    scope = _group(service.tenant, SCOPE)
    page = service.ok(f"/groups/{scope}/members/microsoft.graph.group?$select=id,displayName")
    assert page["value"] == [
        {
            "id": _group(service.tenant, "Password Manager Users - Europe"),
            "displayName": "Password Manager Users - Europe",
        }
    ]


def test_uncast_members_show_devices_principals_and_contacts(service: Service) -> None:
    tenant = service.tenant
    scope = _group(tenant, SCOPE)
    others = _others(tenant, scope)
    assert set(others.values()) == set(OTHER_KINDS)  # the scope group holds one of each
    page = service.ok(f"/groups/{scope}/members?$top=999")
    # permissions-overview.md's /members example: a directoryObjects context, typed items
    assert page["@odata.context"] == f"{BASE}/v1.0/$metadata#directoryObjects"
    shown = {m["id"]: m for m in page["value"]}
    assert set(shown) == tenant.members[scope]
    defaults = {
        "device": DEVICE_DEFAULT,
        "servicePrincipal": SERVICE_PRINCIPAL_DEFAULT,
        "orgContact": ORG_CONTACT_DEFAULT,
    }
    for object_id, kind in others.items():
        item = shown[object_id]
        assert item["@odata.type"] == ODATA_TYPE[kind]
        assert set(item) == {"@odata.type", *defaults[kind]}
        assert item["displayName"] == tenant.others[kind][object_id]["displayName"]
    # $select keeps what each kind has: userPrincipalName is left out on a device
    selected = service.ok(f"/groups/{scope}/members?$select=id,userPrincipalName&$top=999")
    for item in selected["value"]:
        has_upn = tenant.kind_of(item["id"]) == "user"
        assert ("userPrincipalName" in item) is has_upn


@pytest.mark.parametrize("relation", ["members", "transitiveMembers"])
def test_casts_and_counts_leave_other_kinds_out(service: Service, relation: str) -> None:
    tenant = service.tenant
    scope = _group(tenant, SCOPE)
    everything = service.ok(f"/groups/{scope}/{relation}?$select=id&$top=999")["value"]
    kinds = [tenant.kind_of(m["id"]) for m in everything]
    assert any(k in OTHER_KINDS for k in kinds)
    for cast, wanted in (("microsoft.graph.user", "user"), ("microsoft.graph.group", "group")):
        listed = service.ok(
            f"/groups/{scope}/{relation}/{cast}?$count=true&$select=id&$top=999", eventual=True
        )
        assert {m["id"] for m in listed["value"]} == {
            m["id"] for m, k in zip(everything, kinds, strict=True) if k == wanted
        }
        assert listed["@odata.count"] == kinds.count(wanted)
        counted = service.call(f"/groups/{scope}/{relation}/{cast}/$count", eventual=True)
        assert int(counted.body) == kinds.count(wanted)
    total = service.call(f"/groups/{scope}/{relation}/$count", eventual=True)
    assert int(total.body) == len(everything)


# ---- permissions-overview.md: limited information -------------------------------------------
@pytest.fixture
def users_and_groups_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], bool]]:
    """An app granted User.Read.All and Group.Read.All: devices, service principals and
    contacts are unreadable. Patched at the graph module's can_read: the one place member
    lists ask (the permission model's own rule is tested with that model)."""

    def can_read(roles: frozenset[str], kind: str) -> bool:
        return "Directory.Read.All" in roles or kind in ("user", "group")

    monkeypatch.setattr(graph_module, "can_read", can_read)
    yield lambda kind: can_read(frozenset({"User.Read.All"}), kind)


def test_unreadable_member_kinds_come_with_limited_information(
    service: Service, users_and_groups_only: Callable[[str], bool]
) -> None:
    tenant = service.tenant
    scope = _group(tenant, SCOPE)
    path = f"/groups/{scope}/members?$select=id,displayName&$top=999"
    service.graph.roles_of = lambda _request: frozenset({"Directory.Read.All"})
    full = {m["id"]: m for m in service.ok(path)["value"]}  # warms the page cache
    service.graph.roles_of = lambda _request: frozenset({"User.Read.All", "Group.Read.All"})
    limited = {m["id"]: m for m in service.ok(path)["value"]}
    assert set(limited) == set(full)
    for object_id, kind in _others(tenant, scope).items():
        # only @odata.type and id carry values; the cached full page must not leak through
        assert limited[object_id] == {
            "@odata.type": ODATA_TYPE[kind],
            "id": object_id,
            "displayName": None,
        }
        assert full[object_id]["displayName"] is not None
    users = [i for i in limited if tenant.kind_of(i) == "user"]
    assert users and all(limited[i] == full[i] for i in users)


# ---- user-delta.md / group-delta.md: never-set properties -----------------------------------
def test_delta_leaves_out_never_set_properties_and_sends_cleared_ones_as_null(
    service: Service,
) -> None:
    tenant = service.tenant
    user_id = tenant.create_user(displayName="Nina Null", userPrincipalName="nina@contoso.example")
    link = "/users/delta?$select=displayName,jobTitle,mobilePhone"
    items, link = service.delta(link)
    nina = next(i for i in items if i["id"] == user_id)
    assert nina == {"id": user_id, "displayName": "Nina Null"}  # no "jobTitle": null
    tenant.update_user(user_id, jobTitle="Analyst")
    items, link = service.delta(link)
    assert items == [{"id": user_id, "displayName": "Nina Null", "jobTitle": "Analyst"}]
    tenant.update_user(user_id, jobTitle=None)
    items, link = service.delta(link)
    # cleared, so null: the replica must drop its "Analyst"; mobilePhone was never set
    assert items == [{"id": user_id, "displayName": "Nina Null", "jobTitle": None}]
    bare = tenant.create_group(displayName="No Description")
    groups, _ = service.delta("/groups/delta?$select=displayName,description")
    shown = {g["id"]: g for g in groups}
    assert shown[bare] == {"id": bare, "displayName": "No Description"}
    vault = _group(tenant, "Vault Admins")
    assert shown[vault]["description"] == "Administrators of the vault"


def test_members_delta_names_each_members_type(service: Service) -> None:
    tenant = service.tenant
    scope = _group(tenant, SCOPE)
    items, link = service.delta("/groups/delta?$select=displayName,members")
    members = [m for i in items if i["id"] == scope for m in i.get("members@delta", [])]
    others = _others(tenant, scope)
    assert {m["id"]: m["@odata.type"] for m in members if m["id"] in others} == {
        i: ODATA_TYPE[k] for i, k in others.items()
    }
    device = next(i for i, k in others.items() if k == "device")
    holders = sorted(g for g in tenant.groups if device in tenant.members[g])
    tenant.delete_object(device)
    items, _ = service.delta(link)
    removed = {i["id"]: m for i in items for m in i.get("members@delta", []) if m["id"] == device}
    assert sorted(removed) == holders
    assert all(
        m
        == {
            "@odata.type": "#microsoft.graph.device",
            "id": device,
            "@removed": {"reason": "deleted"},
        }
        for m in removed.values()
    )


# ---- throttling: fractional Retry-After -----------------------------------------------------
def test_retry_after_is_the_exact_fractional_wait() -> None:
    moments = iter([100.0, 107.872])
    budget = ResourceUnitBudget(limit=2, window=10.0, clock=lambda: next(moments))
    service = Service(generate_tenant(users=5, groups=10, seed=3), budget)
    assert service.call("/users").status == 200  # 2 RU at t=100
    throttled = service.call("/users")  # at t=107.872 the first RU leave at t=110
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "2.128"
    assert [format_retry_after(s) for s in (3, 0.5, 1.0004)] == ["3", "0.5", "1"]


# ---- errors.md / json-batching.md: innerError -----------------------------------------------
def test_error_inner_error_matches_published_shape(graph: Graph) -> None:
    response = graph.get("/users/no-such-user", headers={"client-request-id": "abc-123"})
    error = assert_graph_error(response, 404, "Request_ResourceNotFound")
    inner = error["innerError"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", inner["date"])  # no trailing Z
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == response.headers["client-request-id"] == "abc-123"


# ---- delta-query-overview.md: properties kept outside the directory -------------------------
def test_selecting_skills_is_501_not_implemented(service: Service) -> None:
    user_id = sorted(service.tenant.users)[0]
    scope = _group(service.tenant, SCOPE)
    for path in (
        "/users?$select=id,skills",
        f"/users/{user_id}?$select=Skills",
        "/users/delta?$select=skills",
        f"/groups/{scope}/members/microsoft.graph.user?$select=interests",
    ):
        response = service.call(path)
        assert response.status == 501, path
        error = json.loads(response.body)["error"]
        assert error["code"] == "NotImplemented"
        assert error["message"] == "This operation target is not yet supported."
    # a name the user resource does not have at all stays a 400
    assert service.call("/users?$select=favouriteColour").status == 400


# ---- the generated tenant -------------------------------------------------------------------
def test_other_kinds_are_deterministic_and_survive_a_document_round_trip() -> None:
    first = generate_tenant(users=120, groups=20, seed=11)
    second = generate_tenant(users=120, groups=20, seed=11)
    assert first.others == second.others and first.members == second.members
    assert all(first.others[k] for k in OTHER_KINDS)
    copy = tenant_from_document(first.to_document())
    assert copy.others == first.others and copy.members == first.members
    assert generate_tenant(users=120, groups=20, seed=12).others != first.others
