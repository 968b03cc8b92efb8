"""Users, groups, members and transitive members: shapes, paging to the end, query options
and the advanced-query rules ($count, $search, ne/endswith need ConsistencyLevel)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from syncctl.emulator import Emulator, EmulatorTenant
from syncctl.emulator.schema import ODATA_TYPE, OTHER_KINDS, USER_DEFAULT

from .conftest import Graph, assert_graph_error


def test_paging_users_to_the_end_returns_each_user_once(
    graph: Graph, tenant: EmulatorTenant
) -> None:
    items, pages = graph.all_pages("/users?$top=64&$select=id,displayName")
    ids = [u["id"] for u in items]
    assert len(ids) == len(set(ids)) == len(tenant.users) == 300
    assert set(ids) == set(tenant.users)
    assert [len(p["value"]) for p in pages] == [64, 64, 64, 64, 44]
    assert all(set(u) == {"id", "displayName"} for u in items)
    # the nextLink is opaque: a $skiptoken, not an offset a client could compute
    query = parse_qs(urlsplit(pages[0]["@odata.nextLink"]).query)
    assert "$skiptoken" in query and "$skip" not in query
    assert not query["$skiptoken"][0].isdigit()
    assert "@odata.nextLink" not in pages[-1]


def test_default_page_size_and_default_properties(graph: Graph) -> None:
    page = graph.ok("/users")
    assert len(page["value"]) == 100
    assert page["@odata.context"].endswith("/v1.0/$metadata#users")
    assert set(page["value"][0]) == set(USER_DEFAULT)
    assert "accountEnabled" not in page["value"][0]  # returned only on $select


def test_select_is_honoured_and_context_names_it(graph: Graph) -> None:
    page = graph.ok("/users?$select=id,accountEnabled,userType,department&$top=5")
    assert page["@odata.context"].endswith("$metadata#users(id,accountEnabled,userType,department)")
    assert all(list(u) == ["id", "accountEnabled", "userType", "department"] for u in page["value"])


def test_unknown_select_property_is_a_400(graph: Graph) -> None:
    error = assert_graph_error(graph.get("/users?$select=id,favouriteColour"), 400)
    assert "favouriteColour" in error["message"]


@pytest.mark.parametrize("top", ["0", "1000", "ten"])
def test_top_outside_1_to_999_is_a_400(graph: Graph, top: str) -> None:
    assert_graph_error(graph.get(f"/users?$top={top}"), 400)


@pytest.mark.parametrize("option", ["$skip=10", "$expand=manager"])
def test_unsupported_options_are_refused_not_ignored(graph: Graph, option: str) -> None:
    assert_graph_error(graph.get(f"/users?{option}"), 400, "Request_BadRequest")


def test_top_999_is_the_maximum(graph: Graph) -> None:
    page = graph.ok("/users?$top=999&$select=id")
    assert len(page["value"]) == 300 and "@odata.nextLink" not in page


def test_count_needs_consistency_level(graph: Graph, tenant: EmulatorTenant) -> None:
    # aad-advanced-queries.md, Error handling: $count=true without the header fails silently
    # (200, no @odata.count); the /$count segment without it is a 400
    ignored = graph.ok("/users?$count=true&$top=5&$select=id")
    assert "@odata.count" not in ignored and len(ignored["value"]) == 5
    error = assert_graph_error(graph.get("/users/$count"), 400, "Request_BadRequest")
    assert "$count" in error["message"]

    first = graph.ok("/users?$count=true&$top=100&$select=id", eventual=True)
    assert first["@odata.count"] == len(tenant.users)
    second = graph.ok(first["@odata.nextLink"], eventual=True)
    assert "@odata.count" not in second  # only on the first page
    # the header is not carried over to nextLink requests: a client must send it again
    assert_graph_error(graph.get(first["@odata.nextLink"]), 400, "Request_UnsupportedQuery")
    counted = graph.get("/users/$count", eventual=True)
    assert counted.status_code == 200 and counted.text == str(len(tenant.users))
    assert counted.headers["content-type"].startswith("text/plain")


def test_filters_syncctl_uses(graph: Graph, tenant: EmulatorTenant) -> None:
    users = list(tenant.users.values())
    some = users[3]
    enabled = str(some["accountEnabled"]).lower()
    cases = {
        f"userPrincipalName eq '{some['userPrincipalName'].upper()}'": {some["id"]},
        f"mail eq '{some['mail']}'": {u["id"] for u in users if u["mail"] == some["mail"]},
        "accountEnabled eq false": {u["id"] for u in users if not u["accountEnabled"]},
        "userType eq 'Guest'": {u["id"] for u in users if u["userType"] == "Guest"},
        "startswith(displayName,'a')": {
            u["id"] for u in users if u["displayName"].lower().startswith("a")
        },
        f"id in ('{users[0]['id']}', '{users[1]['id']}')": {users[0]["id"], users[1]["id"]},
        f"displayName eq '{some['displayName']}' and accountEnabled eq {enabled}": {
            u["id"]
            for u in users
            if u["displayName"] == some["displayName"]
            and u["accountEnabled"] == some["accountEnabled"]
        },
    }
    for expression, expected in cases.items():
        items, _ = graph.all_pages(f"/users?$filter={expression}&$select=id")
        assert {u["id"] for u in items} == expected, expression
    assert cases["accountEnabled eq false"] and cases["userType eq 'Guest'"]


def test_filter_with_quote_escaping(graph: Graph, emu: Emulator) -> None:
    user_id = emu.tenant.create_user(
        displayName="Dara O'Brien", userPrincipalName="dara@contoso.example"
    )
    page = graph.ok("/users?$filter=displayName eq 'Dara O''Brien'&$select=id")
    assert [u["id"] for u in page["value"]] == [user_id]


def test_advanced_filters_need_eventual_and_count(graph: Graph, tenant: EmulatorTenant) -> None:
    for expression in (
        "userType ne 'Guest'",
        "endswith(mail,'@contoso.example')",
        "department eq 'IT'",
    ):
        assert_graph_error(
            graph.get(f"/users?$filter={expression}"), 400, "Request_UnsupportedQuery"
        )
        assert_graph_error(
            graph.get(f"/users?$filter={expression}", eventual=True),
            400,
            "Request_UnsupportedQuery",
        )
    page = graph.ok(
        "/users?$filter=userType ne 'Guest'&$count=true&$top=999&$select=id", eventual=True
    )
    members = {k for k, u in tenant.users.items() if u["userType"] != "Guest"}
    assert page["@odata.count"] == len(members)
    assert {u["id"] for u in page["value"]} == members


def test_unsupported_filter_property_is_a_400(graph: Graph) -> None:
    error = assert_graph_error(graph.get("/users?$filter=favouriteColour eq 'red'"), 400)
    assert "favouriteColour" in error["message"]
    assert_graph_error(graph.get("/users?$filter=displayName eq"), 400)


def test_search_needs_eventual_and_matches_word_prefixes(
    graph: Graph, tenant: EmulatorTenant
) -> None:
    assert_graph_error(
        graph.get('/users?$search="displayName:ad"'), 400, "Request_UnsupportedQuery"
    )
    page = graph.ok(
        '/users?$search="displayName:vance"&$select=id,displayName&$top=999', eventual=True
    )
    expected = {k for k, u in tenant.users.items() if "vance" in u["displayName"].lower().split()}
    assert {u["id"] for u in page["value"]} == expected


def test_get_user_by_id_and_upn_and_404(graph: Graph, tenant: EmulatorTenant) -> None:
    user = next(iter(tenant.users.values()))
    by_id = graph.ok(f"/users/{user['id']}?$select=id,userPrincipalName")
    assert by_id["@odata.context"].endswith("$metadata#users(id,userPrincipalName)/$entity")
    assert by_id["userPrincipalName"] == user["userPrincipalName"]
    by_upn = graph.ok(f"/users/{user['userPrincipalName']}?$select=id")
    assert by_upn["id"] == user["id"]
    guest = next(u for u in tenant.users.values() if u["userType"] == "Guest")
    encoded = guest["userPrincipalName"].replace("#", "%23")  # alias_domain#EXT#@tenant
    assert graph.ok(f"/users/{encoded}?$select=id")["id"] == guest["id"]
    error = assert_graph_error(
        graph.get("/users/00000000-0000-0000-0000-000000000000"), 404, "Request_ResourceNotFound"
    )
    assert "00000000-0000-0000-0000-000000000000" in error["message"]


def test_groups_list_and_filter_by_display_name(graph: Graph, tenant: EmulatorTenant) -> None:
    items, _ = graph.all_pages("/groups?$select=id,displayName,groupTypes,securityEnabled")
    assert len(items) == len(tenant.groups) == 30
    page = graph.ok("/groups?$filter=displayName eq 'Vault Admins'&$select=id")
    assert [g["id"] for g in page["value"]] == [tenant.group_by_name("Vault Admins")["id"]]  # type: ignore[index]
    pm, _ = graph.all_pages("/groups?$filter=startswith(displayName,'PM-')&$select=displayName")
    assert sorted(g["displayName"] for g in pm) == [
        "PM-Archive",
        "PM-Engineering",
        "PM-Finance",
        "PM-Support",
    ]
    unified, _ = graph.all_pages(
        "/groups?$filter=groupTypes/any(c:c eq 'Unified')&$select=groupTypes"
    )
    assert unified and all(g["groupTypes"] == ["Unified"] for g in unified)


def _group_id(tenant: EmulatorTenant, name: str) -> str:
    group = tenant.group_by_name(name)
    assert group is not None
    return str(group["id"])


def test_direct_members_carry_odata_type(graph: Graph, tenant: EmulatorTenant) -> None:
    scope = _group_id(tenant, "Password Manager Users")
    items, _ = graph.all_pages(f"/groups/{scope}/members?$select=id&$top=50")
    assert {m["id"] for m in items} == tenant.members[scope]
    nested = _group_id(tenant, "Password Manager Users - Europe")
    assert {"@odata.type": "#microsoft.graph.group", "id": nested} in items
    # every item names its own type, whichever kind of directory object it is
    assert all(m["@odata.type"] == ODATA_TYPE[tenant.kind_of(m["id"]) or "?"] for m in items)
    assert {m["@odata.type"] for m in items} == set(ODATA_TYPE.values())


def test_transitive_members_of_a_three_level_nesting(graph: Graph, tenant: EmulatorTenant) -> None:
    names = [
        "Password Manager Users",
        "Password Manager Users - Europe",
        "Password Manager Users - Germany",
        "Password Manager Users - Berlin",
    ]
    chain = [_group_id(tenant, n) for n in names]
    expected_users = set().union(
        *({m for m in tenant.members[g] if m in tenant.users} for g in chain)
    )
    others = set().union(
        *({m for m in tenant.members[g] if tenant.kind_of(m) in OTHER_KINDS} for g in chain)
    )
    assert others  # the generated chain holds devices, service principals or contacts
    items, _ = graph.all_pages(f"/groups/{chain[0]}/transitiveMembers?$select=id")
    assert {m["id"] for m in items} == expected_users | set(chain[1:]) | others
    users, _ = graph.all_pages(
        f"/groups/{chain[0]}/transitiveMembers/microsoft.graph.user?$count=true&$select=id,displayName",
        eventual=True,
    )
    assert {u["id"] for u in users} == expected_users
    # group-list-transitivemembers.md: cast lists carry no @odata.type on their items
    assert all(set(u) == {"id", "displayName"} for u in users)
    # the deepest level's users are reached through three nested groups
    deepest = {m for m in tenant.members[chain[3]] if m in tenant.users}
    assert deepest and deepest <= {u["id"] for u in users}
    assert deepest.isdisjoint(tenant.members[chain[0]])


def test_transitive_cast_needs_advanced_query(graph: Graph, tenant: EmulatorTenant) -> None:
    scope = _group_id(tenant, "Password Manager Users")
    assert_graph_error(
        graph.get(f"/groups/{scope}/transitiveMembers/microsoft.graph.user"),
        400,
        "Request_UnsupportedQuery",
    )
    counted = graph.get(
        f"/groups/{scope}/transitiveMembers/microsoft.graph.user/$count", eventual=True
    )
    assert counted.status_code == 200 and int(counted.text) > 0


def test_empty_group_has_no_members(graph: Graph, tenant: EmulatorTenant) -> None:
    empty = _group_id(tenant, "PM-Archive")
    page = graph.ok(f"/groups/{empty}/members")
    assert page["value"] == [] and "@odata.nextLink" not in page


def test_members_of_a_missing_group_is_a_404(graph: Graph) -> None:
    assert_graph_error(graph.get("/groups/not-a-group/members"), 404, "Request_ResourceNotFound")


def test_invalid_skiptoken_is_a_400_not_an_empty_page(graph: Graph) -> None:
    assert_graph_error(graph.get("/users?$skiptoken=bm9wZQ"), 400)


def test_unknown_segment_is_a_400(graph: Graph) -> None:
    assert_graph_error(graph.get("/applications"), 400, "BadRequest")


def test_soft_deleted_member_disappears_from_member_lists(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    scope = _group_id(tenant, "Password Manager Users")
    victim = sorted(m for m in tenant.members[scope] if m in tenant.users)[0]
    tenant.soft_delete_user(victim)
    items, _ = graph.all_pages(f"/groups/{scope}/members?$select=id")
    assert victim not in {m["id"] for m in items}
    tenant.restore_user(victim)
    items, _ = graph.all_pages(f"/groups/{scope}/members?$select=id")
    assert victim in {m["id"] for m in items}


def test_parallel_readers_while_the_tenant_changes(graph: Graph, emu: Emulator) -> None:
    """syncctl reads groups in parallel (bounded); the emulator must serve that consistently
    while mutations land from another thread."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    tenant = emu.tenant
    graph.token()
    groups = sorted(tenant.groups)[:8]
    expected = {g: set(tenant.members[g]) for g in groups}
    stop = threading.Event()

    def churn() -> None:
        victims = sorted(tenant.users)[-20:]
        index = 0
        while not stop.is_set():
            tenant.update_user(victims[index % 20], jobTitle=f"Churn {index}")
            index += 1
            stop.wait(0.002)

    def members(group_id: str) -> set[str]:
        items, _ = graph.all_pages(f"/groups/{group_id}/members?$select=id&$top=7")
        return {m["id"] for m in items}

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip(groups, pool.map(members, groups), strict=True))
    finally:
        stop.set()
        writer.join()
    assert results == expected
