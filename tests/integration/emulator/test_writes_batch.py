"""Deleted items, retention, PATCH /users/{id}, DELETE /groups/{id}, directoryObjects/getByIds
and $batch."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from syncctl.emulator import Emulator, EmulatorTenant
from syncctl.emulator.identity import DEFAULT_ROLES

from .conftest import Graph, assert_graph_error


@pytest.fixture
def writer(graph: Graph, emu: Emulator) -> Graph:
    """The default app, also granted User.ReadWrite.All: Graph refuses a PATCH without it."""
    emu.set_roles([*DEFAULT_ROLES, "User.ReadWrite.All"])
    return graph


def test_deleted_items_list_soft_deleted_users(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    victims = sorted(tenant.users)[:3]
    for victim in victims:
        tenant.soft_delete_user(victim)
    page = graph.ok(
        "/directory/deletedItems/microsoft.graph.user?$select=id,displayName,deletedDateTime"
    )
    assert sorted(u["id"] for u in page["value"]) == victims
    assert all(u["deletedDateTime"].endswith("Z") for u in page["value"])
    # deleteditems-list.md: shaped like /users (same context, no @odata.type on items)
    assert page["@odata.context"].endswith("$metadata#users(id,displayName,deletedDateTime)")
    assert all("@odata.type" not in u for u in page["value"])
    # Graph's own example: case-insensitive option and property names; deletedDateTime
    # ordering is an advanced query
    ordered = (
        "/directory/deleteditems/microsoft.graph.user"
        "?$count=true&$orderBy=deletedDateTime desc&$select=id,DisplayName"
    )
    assert_graph_error(graph.get(ordered.replace("$count=true&", "")), 400)
    newest_first = graph.ok(ordered, eventual=True)
    assert newest_first["@odata.count"] == 3
    assert set(newest_first["value"][0]) == {"id", "displayName"}
    assert graph.ok("/directory/deletedItems/microsoft.graph.group")["value"] == []
    assert_graph_error(graph.get("/directory/deletedItems"), 400, "Request_BadRequest")
    single = graph.ok(f"/directory/deletedItems/{victims[0]}")
    assert single["id"] == victims[0]
    counted = graph.get("/directory/deletedItems/microsoft.graph.user/$count", eventual=True)
    assert counted.text == "3"


def test_deleted_items_expire_after_retention(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    tenant.retention = timedelta(days=3)  # Entra keeps 30 days; delta tokens live only 7
    link = graph.delta("/users/delta?$select=id")[1]
    victim = sorted(tenant.users)[0]
    tenant.soft_delete_user(victim)
    tenant.advance(2 * 86400)
    assert [u["id"] for u in graph.ok("/directory/deletedItems/microsoft.graph.user")["value"]] == [
        victim
    ]
    tenant.advance(2 * 86400)
    assert graph.ok("/directory/deletedItems/microsoft.graph.user")["value"] == []
    assert victim not in tenant.deleted_users
    items, _, _ = graph.delta(link)
    assert items == [{"id": victim, "@removed": {"reason": "deleted"}}]


def test_deleted_m365_group_is_listed(graph: Graph, tenant: EmulatorTenant, emu: Emulator) -> None:
    group = tenant.group_by_name("All Company")
    assert group is not None
    tenant.soft_delete_group(group["id"])
    page = graph.ok("/directory/deletedItems/microsoft.graph.group?$select=id,displayName")
    assert page["value"] == [{"id": group["id"], "displayName": "All Company"}]
    assert_graph_error(graph.get(f"/groups/{group['id']}"), 404)
    tenant.restore_group(group["id"])
    assert graph.ok(f"/groups/{group['id']}?$select=id")["id"] == group["id"]


def test_patch_user_updates_and_feeds_delta(writer: Graph, emu: Emulator) -> None:
    graph = writer
    tenant = emu.tenant
    link = graph.delta("/users/delta?$select=id,accountEnabled,jobTitle")[1]
    user_id = sorted(tenant.users)[0]
    response = graph.request(
        "PATCH", f"/users/{user_id}", json={"accountEnabled": False, "jobTitle": "Gone"}
    )
    assert response.status_code == 204 and response.content == b""
    assert graph.ok(f"/users/{user_id}?$select=accountEnabled,jobTitle") == {
        "@odata.context": f"{emu.graph}/v1.0/$metadata#users(accountEnabled,jobTitle)/$entity",
        "accountEnabled": False,
        "jobTitle": "Gone",
    }
    items, _, _ = graph.delta(link)
    assert items == [{"id": user_id, "accountEnabled": False, "jobTitle": "Gone"}]


def test_patch_password_profile_never_stores_the_password(writer: Graph, emu: Emulator) -> None:
    graph = writer
    user_id = sorted(emu.tenant.users)[0]
    before = emu.tenant.users[user_id]["lastPasswordChangeDateTime"]
    emu.tenant.advance(60)
    secret = "xWwvJ]6NMw+bWH-d"
    response = graph.request(
        "PATCH",
        f"/users/{user_id}",
        json={"passwordProfile": {"forceChangePasswordNextSignIn": True, "password": secret}},
    )
    assert response.status_code == 204
    assert emu.tenant.users[user_id]["lastPasswordChangeDateTime"] > before
    assert secret not in json.dumps(emu.tenant.to_document())
    shown = graph.ok(f"/users/{user_id}?$select=passwordProfile")
    assert shown["passwordProfile"] is None


def test_patch_rejects_unknown_and_read_only_properties(
    writer: Graph, tenant: EmulatorTenant
) -> None:
    graph = writer
    user_id = sorted(tenant.users)[0]
    assert_graph_error(
        graph.request("PATCH", f"/users/{user_id}", json={"shoeSize": 44}),
        400,
        "Request_BadRequest",
    )
    assert_graph_error(
        graph.request("PATCH", f"/users/{user_id}", json={"id": "x"}), 400, "Request_BadRequest"
    )
    for wrong in ({"accountEnabled": "false"}, {"jobTitle": 7}, {"businessPhones": "+1 555"}):
        response = graph.request("PATCH", f"/users/{user_id}", json=wrong)
        assert_graph_error(response, 400, "Request_BadRequest")
    assert isinstance(tenant.users[user_id]["accountEnabled"], bool)
    other = sorted(tenant.users)[1]
    taken = tenant.users[other]["userPrincipalName"]
    error = assert_graph_error(
        graph.request("PATCH", f"/users/{user_id}", json={"userPrincipalName": taken}), 400
    )
    assert "already exists" in error["message"]
    assert_graph_error(graph.request("PATCH", "/users/missing", json={"jobTitle": "x"}), 404)


def test_delete_group_needs_group_readwrite_and_keeps_only_m365_groups(
    graph: Graph, emu: Emulator
) -> None:
    tenant = emu.tenant
    m365 = tenant.create_group(
        displayName="Doomed M365", groupTypes=["Unified"], mailEnabled=True, securityEnabled=False
    )
    security = tenant.create_group(displayName="Doomed security")
    # json-batching.md's example: an app without Group.ReadWrite.All is refused, not 405
    assert_graph_error(
        graph.request("DELETE", f"/groups/{m365}"), 403, "Authorization_RequestDenied"
    )
    assert m365 in tenant.groups
    client_id, _ = emu.add_application(["Group.ReadWrite.All"])
    auth = {"Authorization": f"Bearer {emu.mint_token(client_id=client_id)}"}

    def delete(group_id: str) -> httpx.Response:
        return graph.http.delete(f"{emu.graph}/v1.0/groups/{group_id}", headers=auth)

    for group_id in (m365, security):
        answer = delete(group_id)
        assert (answer.status_code, answer.content) == (204, b"")
    # group-delete.md: Microsoft 365 groups are restorable for 30 days, security groups are not
    assert m365 in tenant.deleted_groups and m365 not in tenant.groups
    assert security not in tenant.deleted_groups and security not in tenant.groups
    assert_graph_error(delete(security), 404, "Request_ResourceNotFound")


def test_get_by_ids_returns_existing_objects_of_wanted_types(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    users = sorted(tenant.users)[:2]
    group = sorted(tenant.groups)[0]
    tenant.soft_delete_user(users[1])
    body = {
        "ids": [users[0], users[1], group, "00000000-0000-0000-0000-000000000000"],
        "types": ["user", "group"],
    }
    response = graph.request("POST", "/directoryObjects/getByIds?$select=id,displayName", json=body)
    assert response.status_code == 200
    value = response.json()["value"]
    assert [(v["@odata.type"], v["id"]) for v in value] == [
        ("#microsoft.graph.user", users[0]),
        ("#microsoft.graph.group", group),
    ]
    only_groups = graph.request(
        "POST", "/directoryObjects/getByIds", json={**body, "types": ["group"]}
    )
    assert [v["id"] for v in only_groups.json()["value"]] == [group]
    assert "securityEnabled" in only_groups.json()["value"][0]  # default group properties
    too_many = graph.request("POST", "/directoryObjects/getByIds", json={"ids": ["x"] * 1001})
    assert_graph_error(too_many, 400, "Request_BadRequest")
    bad_type = graph.request(
        "POST", "/directoryObjects/getByIds", json={"ids": [group], "types": ["printer"]}
    )
    assert_graph_error(bad_type, 400, "Request_BadRequest")
    no_ids = graph.request("POST", "/directoryObjects/getByIds", json={"types": ["user"]})
    assert_graph_error(no_ids, 400, "Request_BadRequest")


def test_batch_runs_get_routes_with_per_item_status(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    user_id = sorted(tenant.users)[0]
    scope = tenant.group_by_name("Password Manager Users")
    assert scope is not None
    requests = [
        {"id": "1", "method": "GET", "url": f"/users/{user_id}?$select=id,displayName"},
        {"id": "2", "method": "GET", "url": "/users/00000000-0000-0000-0000-000000000000"},
        {
            "id": "3",
            "method": "GET",
            "url": f"/groups/{scope['id']}/transitiveMembers/microsoft.graph.user"
            "?$count=true&$select=id",
            "headers": {"ConsistencyLevel": "eventual"},
        },
        {"id": "4", "method": "GET", "url": "users?$count=true"},
        {"id": "5", "method": "GET", "url": "/groups?$top=2&$select=id"},
    ]
    response = graph.request("POST", "/$batch", json={"requests": requests})
    assert response.status_code == 200
    responses = response.json()["responses"]
    assert sorted(r["id"] for r in responses) == ["1", "2", "3", "4", "5"]
    assert [r["id"] for r in responses] != ["1", "2", "3", "4", "5"]  # any order, like Graph
    by_id = {r["id"]: r for r in responses}
    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["id"] == user_id
    assert (
        by_id["2"]["status"] == 404
        and by_id["2"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    )
    assert by_id["3"]["status"] == 200 and by_id["3"]["body"]["@odata.count"] > 0
    # no ConsistencyLevel on that item (headers are per item): $count=true is ignored
    # (aad-advanced-queries.md), so no @odata.count, where item 3 has one
    assert by_id["4"]["status"] == 200 and "@odata.count" not in by_id["4"]["body"]
    # json-batching.md: error items are plain application/json, without OData-Version
    assert by_id["2"]["headers"]["Content-Type"] == "application/json"
    assert "OData-Version" not in by_id["2"]["headers"]
    assert len(by_id["5"]["body"]["value"]) == 2 and "@odata.nextLink" in by_id["5"]["body"]
    next_page = graph.ok(by_id["5"]["body"]["@odata.nextLink"])
    assert len(next_page["value"]) == 2
    assert by_id["1"]["headers"]["Content-Type"].startswith("application/json")


def test_batch_limits_and_validation(graph: Graph) -> None:
    item = {"method": "GET", "url": "/users?$top=1"}
    too_many = [{"id": str(i), **item} for i in range(21)]
    assert_graph_error(
        graph.request("POST", "/$batch", json={"requests": too_many}), 400, "BadRequest"
    )
    duplicate = [{"id": "1", **item}, {"id": "1", **item}]
    assert_graph_error(
        graph.request("POST", "/$batch", json={"requests": duplicate}), 400, "BadRequest"
    )
    assert_graph_error(graph.request("POST", "/$batch", json={"nope": []}), 400)
    assert_graph_error(graph.request("POST", "/$batch", content=b"{not json"), 400)
    body_without_type = [{"id": "1", "method": "PATCH", "url": "/users/x", "body": {"a": 1}}]
    assert_graph_error(graph.request("POST", "/$batch", json={"requests": body_without_type}), 400)
    twenty = [{"id": str(i), **item} for i in range(20)]
    assert graph.request("POST", "/$batch", json={"requests": twenty}).status_code == 200


def test_batch_depends_on_a_failed_item_gets_424(writer: Graph, tenant: EmulatorTenant) -> None:
    graph = writer
    user_id = sorted(tenant.users)[0]
    requests = [
        {"id": "a", "method": "GET", "url": "/users/missing-user"},
        {
            "id": "b",
            "method": "PATCH",
            "url": f"/users/{user_id}",
            "headers": {"Content-Type": "application/json"},
            "body": {"jobTitle": "Should not happen"},
            "dependsOn": ["a"],
        },
        {
            "id": "c",
            "method": "PATCH",
            "url": f"/users/{user_id}",
            "headers": {"Content-Type": "application/json"},
            "body": {"department": "Batched"},
        },
    ]
    responses = {
        r["id"]: r
        for r in graph.request("POST", "/$batch", json={"requests": requests}).json()["responses"]
    }
    assert responses["a"]["status"] == 404
    assert responses["b"]["status"] == 424
    # a 204 item keeps the body key, null (the emulator used to leave the key out)
    assert responses["c"]["status"] == 204 and responses["c"]["body"] is None
    assert tenant.users[user_id]["jobTitle"] != "Should not happen"
    assert tenant.users[user_id]["department"] == "Batched"


def test_single_object_lookups_answer_404_request_resource_not_found(
    graph: Graph, emu: Emulator
) -> None:
    """What the reader's removal checks rely on: GET /directoryObjects/{id} finds live
    objects of any type; GET /directory/deletedItems/{id} finds deleted ones; a miss is 404
    Request_ResourceNotFound with Graph's wording (as Graph answers for a missing directory
    object), directly and inside a $batch."""
    tenant = emu.tenant
    live_user, soft_user = sorted(tenant.users)[:2]
    group = sorted(tenant.groups)[0]
    tenant.soft_delete_user(soft_user)
    missing = "00000000-0000-0000-0000-0000000000aa"

    user = graph.ok(f"/directoryObjects/{live_user}?$select=id,accountEnabled")
    assert user["@odata.type"] == "#microsoft.graph.user" and user["id"] == live_user
    assert user["@odata.context"].endswith("$metadata#directoryObjects/$entity")
    assert graph.ok(f"/directoryObjects/{group}")["@odata.type"] == "#microsoft.graph.group"
    for object_id in (soft_user, missing):
        error = assert_graph_error(
            graph.get(f"/directoryObjects/{object_id}"), 404, "Request_ResourceNotFound"
        )
        assert error["message"] == (
            f"Resource '{object_id}' does not exist or one of its queried reference-property "
            "objects are not present."
        )
    assert graph.ok(f"/directory/deletedItems/{soft_user}?$select=id")["id"] == soft_user
    for object_id in (live_user, missing):
        assert_graph_error(
            graph.get(f"/directory/deletedItems/{object_id}"), 404, "Request_ResourceNotFound"
        )

    requests = [
        {"id": "1", "method": "GET", "url": f"/directory/deletedItems/{missing}?$select=id"},
        {"id": "2", "method": "GET", "url": f"/directoryObjects/{missing}?$select=id"},
        {"id": "3", "method": "GET", "url": f"/directoryObjects/{live_user}?$select=id"},
    ]
    by_id = {
        r["id"]: r
        for r in graph.request("POST", "/$batch", json={"requests": requests}).json()["responses"]
    }
    assert [by_id[i]["status"] for i in "123"] == [404, 404, 200]
    assert by_id["1"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert by_id["2"]["body"]["error"]["code"] == "Request_ResourceNotFound"
