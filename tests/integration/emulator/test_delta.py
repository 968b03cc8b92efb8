"""Delta queries: initial rounds, incremental rounds after each kind of mutation,
members@delta additions and removals, a large group split over pages, expiry and replays."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from syncctl.emulator import Emulator, EmulatorTenant
from syncctl.emulator.schema import ODATA_TYPE

from .conftest import Graph, assert_graph_error

USERS_DELTA = "/users/delta?$select=id,displayName,accountEnabled,userPrincipalName"
GROUPS_DELTA = "/groups/delta?$select=id,displayName,members"


def _by_id(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        grouped.setdefault(item["id"], []).append(item)
    return grouped


def test_initial_users_delta_pages_to_a_delta_link(graph: Graph, tenant: EmulatorTenant) -> None:
    items, delta_link, pages = graph.delta(USERS_DELTA)
    assert pages == 3  # 300 users, 100 per page
    assert {u["id"] for u in items} == set(tenant.users)
    assert all(
        set(u) == {"id", "displayName", "accountEnabled", "userPrincipalName"} for u in items
    )
    assert "$deltatoken=" in delta_link
    # nothing changed: the next round is empty and costs one request
    again, next_link, pages = graph.delta(delta_link)
    assert again == [] and pages == 1 and "$deltatoken=" in next_link


def test_maxpagesize_preference(graph: Graph) -> None:
    _, _, pages = graph.delta(USERS_DELTA, headers={"Prefer": "odata.maxpagesize=50"})
    assert pages == 6


def test_delta_rejects_top_and_orderby(graph: Graph) -> None:
    assert_graph_error(graph.get("/users/delta?$top=5"), 400, "Request_UnsupportedQuery")
    assert_graph_error(
        graph.get("/users/delta?$orderby=displayName"), 400, "Request_UnsupportedQuery"
    )


def test_each_user_mutation_shows_up_in_the_next_round(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    _, link, _ = graph.delta(USERS_DELTA)
    ids = sorted(tenant.users)

    created = tenant.create_user(
        displayName="Nadia New", userPrincipalName="nadia.new@contoso.example"
    )
    tenant.update_user(ids[0], displayName="Renamed Person")
    tenant.disable_user(ids[1])
    tenant.soft_delete_user(ids[2])
    tenant.hard_delete_user(ids[3])
    tenant.soft_delete_user(ids[4])
    tenant.hard_delete_user(ids[4])  # purged from deleted items
    tenant.update_user(ids[5], jobTitle="Not selected, not tracked")

    items, link, _ = graph.delta(link)
    seen = {item["id"]: item for item in items}
    assert seen[created] == {
        "id": created,
        "displayName": "Nadia New",
        "accountEnabled": True,
        "userPrincipalName": "nadia.new@contoso.example",
    }
    assert seen[ids[0]]["displayName"] == "Renamed Person"
    assert seen[ids[1]]["accountEnabled"] is False
    assert seen[ids[2]] == {"id": ids[2], "@removed": {"reason": "changed"}}
    assert seen[ids[3]] == {"id": ids[3], "@removed": {"reason": "deleted"}}
    assert seen[ids[4]] == {"id": ids[4], "@removed": {"reason": "deleted"}}
    assert ids[5] not in seen  # unselected property changes do not surface
    assert len(items) == 6

    tenant.restore_user(ids[2])
    items, link, _ = graph.delta(link)
    assert [i["id"] for i in items] == [ids[2]]
    assert (
        "@removed" not in items[0]
        and items[0]["displayName"] == tenant.users[ids[2]]["displayName"]
    )


def test_prefer_return_minimal_sends_only_changed_properties(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    _, link, _ = graph.delta(USERS_DELTA)
    user_id = sorted(tenant.users)[10]
    flipped = not tenant.users[user_id]["accountEnabled"]
    tenant.update_user(user_id, accountEnabled=flipped)
    tenant.update_user(user_id, accountEnabled=flipped)  # no change, no log entry
    items, _, _ = graph.delta(link, headers={"Prefer": "return=minimal"})
    assert items == [{"id": user_id, "accountEnabled": flipped}]
    applied = graph.get(link, headers={"Prefer": "return=minimal"}).headers["Preference-Applied"]
    assert applied == "return=minimal"


def test_groups_delta_initial_full_membership(graph: Graph, tenant: EmulatorTenant) -> None:
    items, _, _ = graph.delta(GROUPS_DELTA)
    merged: dict[str, set[str]] = {}
    for item in items:
        merged.setdefault(item["id"], set()).update(m["id"] for m in item.get("members@delta", []))
        for member in item.get("members@delta", []):
            assert member["@odata.type"] == ODATA_TYPE[tenant.kind_of(member["id"]) or "?"]
            assert "@removed" not in member
    assert set(merged) == set(tenant.groups)
    for group_id, members in merged.items():
        assert members == tenant.members[group_id], tenant.groups[group_id]["displayName"]
    empty = tenant.group_by_name("PM-Archive")
    assert empty is not None
    assert all("members@delta" not in i for i in items if i["id"] == empty["id"])


def test_a_large_group_repeats_across_pages(graph: Graph, emu: Emulator) -> None:
    emu.service.delta.member_chunk = 40
    big = emu.tenant.group_by_name("All Company")
    assert big is not None and len(emu.tenant.members[big["id"]]) > 200
    pages_with_big: list[int] = []
    slices: list[set[str]] = []
    url: str | None = GROUPS_DELTA
    page_number = 0
    while url:
        page = graph.ok(url, headers={"Prefer": "odata.maxpagesize=10"})
        for item in page["value"]:
            if item["id"] == big["id"]:
                pages_with_big.append(page_number)
                slices.append({m["id"] for m in item["members@delta"]})
                assert item["displayName"] == "All Company"
        page_number += 1
        url = page.get("@odata.nextLink")
    assert len(pages_with_big) == len(set(pages_with_big)) >= 6  # once per page, many pages
    assert set().union(*slices) == emu.tenant.members[big["id"]]
    assert sum(len(s) for s in slices) == len(emu.tenant.members[big["id"]])


def test_members_delta_additions_and_removals(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    _, link, _ = graph.delta(GROUPS_DELTA)
    admins = tenant.group_by_name("Vault Admins")
    assert admins is not None
    current = sorted(tenant.members[admins["id"]])
    newcomer = next(u for u in sorted(tenant.users) if u not in tenant.members[admins["id"]])
    tenant.add_member(admins["id"], newcomer)
    tenant.remove_member(admins["id"], current[0])
    items, link, _ = graph.delta(link)
    assert len(items) == 1 and items[0]["id"] == admins["id"]
    assert sorted(items[0]["members@delta"], key=lambda m: m["id"]) == sorted(
        [
            {"@odata.type": "#microsoft.graph.user", "id": newcomer},
            {
                "@odata.type": "#microsoft.graph.user",
                "id": current[0],
                "@removed": {"reason": "deleted"},
            },
        ],
        key=lambda m: m["id"],
    )
    # a soft-deleted user leaves every group's member list (and comes back on restore)
    victim = current[1]
    groups_of_victim = {g for g, members in tenant.members.items() if victim in members}
    tenant.soft_delete_user(victim)
    items, link, _ = graph.delta(link)
    removed_from = {
        i["id"]
        for i in items
        for m in i.get("members@delta", [])
        if m["id"] == victim and "@removed" in m
    }
    assert removed_from == groups_of_victim
    tenant.restore_user(victim)
    items, link, _ = graph.delta(link)
    added_to = {
        i["id"]
        for i in items
        for m in i.get("members@delta", [])
        if m["id"] == victim and "@removed" not in m
    }
    assert added_to == groups_of_victim


def test_group_deletes_report_changed_for_m365_and_deleted_for_security(
    graph: Graph, emu: Emulator
) -> None:
    tenant = emu.tenant
    _, link, _ = graph.delta(GROUPS_DELTA)
    m365 = tenant.group_by_name("All Company")
    security = tenant.group_by_name("PM-Finance")
    assert m365 is not None and security is not None
    tenant.soft_delete_group(m365["id"])
    tenant.soft_delete_group(security["id"])  # security groups are not restorable in Entra
    new_group = tenant.create_group(displayName="PM-New")
    items, link, _ = graph.delta(link)
    seen = {i["id"]: i for i in items}
    assert seen[m365["id"]] == {"id": m365["id"], "@removed": {"reason": "changed"}}
    assert seen[security["id"]] == {"id": security["id"], "@removed": {"reason": "deleted"}}
    assert seen[new_group]["displayName"] == "PM-New"
    assert security["id"] not in tenant.deleted_groups


def test_expired_delta_token_is_410_with_location(graph: Graph, emu: Emulator) -> None:
    _, link, _ = graph.delta(USERS_DELTA)
    emu.expire_delta_tokens()
    response = graph.get(link)
    error = assert_graph_error(response, 410, "syncStateNotFound")
    assert "synchronized again" in error["message"]
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert query["$deltatoken"] == [""]
    assert query["$select"] == ["id,displayName,accountEnabled,userPrincipalName"]
    items, fresh_link, _ = graph.delta(location)  # following it restarts with a full round
    assert len(items) == len(emu.tenant.users)
    assert graph.delta(fresh_link)[0] == []


def test_delta_tokens_expire_after_seven_days(graph: Graph, emu: Emulator) -> None:
    _, link, _ = graph.delta(USERS_DELTA)
    emu.tenant.advance(6 * 86400)
    _, link, _ = graph.delta(link)  # six days is fine, and refreshes the token
    emu.tenant.advance(7 * 86400 + 60)
    assert_graph_error(graph.get(link), 410, "syncStateNotFound")


def test_delta_token_latest_starts_from_now(graph: Graph, emu: Emulator) -> None:
    page = graph.ok("/users/delta?$deltatoken=latest&$select=id,displayName")
    assert page["value"] == [] and "@odata.deltaLink" in page
    user_id = sorted(emu.tenant.users)[0]
    emu.tenant.update_user(user_id, displayName="After Latest")
    items, _, _ = graph.delta(page["@odata.deltaLink"])
    assert items == [{"id": user_id, "displayName": "After Latest"}]


def test_replays_resend_the_previous_round(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    _, link, _ = graph.delta(USERS_DELTA)
    first, second = sorted(tenant.users)[:2]
    tenant.update_user(first, displayName="Round One")
    items, link, _ = graph.delta(link)
    assert [i["id"] for i in items] == [first]
    tenant.update_user(second, displayName="Round Two")
    emu.replay_delta()
    items, link, _ = graph.delta(link)
    assert sorted(i["id"] for i in items) == sorted([first, second])  # first is replayed
    items, _, _ = graph.delta(link)
    assert items == []


def test_delta_filter_by_ids(graph: Graph, tenant: EmulatorTenant) -> None:
    wanted = sorted(tenant.users)[:3]
    expression = " or ".join(f"id eq '{i}'" for i in wanted)
    items, _, _ = graph.delta(f"/users/delta?$select=displayName&$filter={expression}")
    assert sorted(i["id"] for i in items) == wanted
    assert_graph_error(graph.get("/users/delta?$filter=displayName eq 'x'"), 400)


@pytest.mark.parametrize("token", ["not-base64!", "eyJ0eXAiOiJKV1QifQ"])
def test_malformed_delta_tokens_are_400(graph: Graph, token: str) -> None:
    assert_graph_error(graph.get(f"/users/delta?$deltatoken={token}"), 400)


def test_users_delta_token_is_not_valid_for_groups(graph: Graph) -> None:
    _, link, _ = graph.delta(USERS_DELTA)
    token = parse_qs(urlsplit(link).query)["$deltatoken"][0]
    assert_graph_error(graph.get(f"/groups/delta?$deltatoken={token}"), 400)


def test_expand_members_tracks_membership_like_selecting_members(
    graph: Graph, tenant: EmulatorTenant
) -> None:
    """delta-query-groups.md asks for membership with $expand=members; group-delta.md with
    $select=members: both carry the same members@delta, and the token keeps the choice."""
    expanded, expanded_link, _ = graph.delta("/groups/delta?$select=displayName&$expand=members")
    selected, _, _ = graph.delta("/groups/delta?$select=displayName,members")
    members = {g["id"]: g.get("members@delta") for g in expanded}
    assert members == {g["id"]: g.get("members@delta") for g in selected}
    assert any(members.values())
    assert all(set(g) - {"members@delta"} == {"id", "displayName"} for g in expanded)
    group = next(g for g in sorted(tenant.groups) if tenant.live_members(g))
    member = tenant.live_members(group)[0]
    tenant.remove_member(group, member)
    changed, _, _ = graph.delta(expanded_link)
    assert [g["id"] for g in changed] == [group]
    assert changed[0]["members@delta"] == [
        {"@odata.type": ODATA_TYPE[tenant.kind_of(member) or "user"], "id": member}
        | {"@removed": {"reason": "deleted"}}
    ]
    # only members on groups is documented: any other expansion is refused, not ignored
    for refused in ("/groups/delta?$expand=owners", "/users/delta?$expand=members"):
        assert_graph_error(graph.get(refused), 400, "Request_UnsupportedQuery")
