"""Property: a client that applies every delta round to its own replica always ends up with
exactly the tenant's state, whatever sequence of mutations happened in between (creates,
updates, disables, soft/hard deletes, restores, membership changes, nested groups, pages
split mid-group, minimal responses, replays)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncctl.emulator import EmulatorTenant, generate_tenant
from syncctl.emulator.faults import Faults
from syncctl.emulator.graph import GraphService
from syncctl.emulator.identity import Identity
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.throttle import ResourceUnitBudget

BASE = "https://emulator.test"
USER_SELECT = ("id", "displayName", "accountEnabled", "jobTitle")


class Replica:
    def __init__(self, service: GraphService, token: str, minimal: bool, page_size: int) -> None:
        self.service, self.token = service, token
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Prefer": f"odata.maxpagesize={page_size}",
        }
        if minimal:
            self.headers["Prefer"] += ", return=minimal"
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, set[str]] = {}
        self.user_link = f"/v1.0/users/delta?$select={','.join(USER_SELECT)}"
        self.group_link = "/v1.0/groups/delta?$select=displayName,members"

    def _round(self, link: str) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        url = link
        while True:
            response = self.service.handle(GraphRequest.from_target("GET", url, self.headers))
            assert response.status == 200, response.body
            page = json.loads(response.body)
            items.extend(page["value"])
            if "@odata.nextLink" in page:
                url = page["@odata.nextLink"].removeprefix(BASE)
                continue
            return items, page["@odata.deltaLink"].removeprefix(BASE)

    def sync(self) -> None:
        items, self.user_link = self._round(self.user_link)
        for item in items:
            if "@removed" in item:
                self.users.pop(item["id"], None)
            else:
                self.users.setdefault(item["id"], {}).update(item)
        items, self.group_link = self._round(self.group_link)
        for item in items:
            if "@removed" in item:
                self.groups.pop(item["id"], None)
                continue
            members = self.groups.setdefault(item["id"], set())
            for member in item.get("members@delta", []):
                if "@removed" in member:
                    members.discard(member["id"])
                else:
                    members.add(member["id"])


def _expected(tenant: EmulatorTenant) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
    """What a replica holds: a never-set property is absent (delta never sends it), one
    that was set and cleared is null (user-delta.md)."""
    users = {
        k: {
            p: u.get(p)
            for p in USER_SELECT
            if u.get(p) is not None or p in tenant.cleared.get(k, set())
        }
        for k, u in tenant.users.items()
    }
    groups = {k: set(tenant.live_members(k)) for k in tenant.groups}
    return users, groups


OPS = (
    "create_user",
    "update_user",
    "clear_job_title",
    "disable_user",
    "soft_delete_user",
    "restore_user",
    "hard_delete_user",
    "create_group",
    "soft_delete_group",
    "restore_group",
    "hard_delete_group",
    "add_member",
    "remove_member",
    "delete_other",
    "untracked_update",
)


def _mutate(tenant: EmulatorTenant, data: st.DataObject, op: str, counter: list[int]) -> None:
    users, groups = sorted(tenant.users), sorted(tenant.groups)
    pick = lambda pool: data.draw(st.sampled_from(pool))  # noqa: E731
    counter[0] += 1
    n = counter[0]
    if op == "create_user":
        tenant.create_user(displayName=f"New {n}", userPrincipalName=f"new{n}@contoso.example")
    elif op == "update_user" and users:
        tenant.update_user(pick(users), displayName=f"Renamed {n}", jobTitle=f"Title {n}")
    elif op == "clear_job_title" and users:
        tenant.update_user(pick(users), jobTitle=None)  # set -> null must reach the replica
    elif op == "disable_user" and users:
        tenant.disable_user(pick(users))
    elif op == "soft_delete_user" and users:
        tenant.soft_delete_user(pick(users))
    elif op == "restore_user" and tenant.deleted_users:
        tenant.restore_user(pick(sorted(tenant.deleted_users)))
    elif op == "hard_delete_user" and (users or tenant.deleted_users):
        tenant.hard_delete_user(pick(users + sorted(tenant.deleted_users)))
    elif op == "create_group":
        unified = data.draw(st.booleans())
        tenant.create_group(displayName=f"Group {n}", groupTypes=["Unified"] if unified else [])
    elif op == "soft_delete_group" and groups:
        tenant.soft_delete_group(pick(groups))
    elif op == "restore_group" and tenant.deleted_groups:
        tenant.restore_group(pick(sorted(tenant.deleted_groups)))
    elif op == "hard_delete_group" and (groups or tenant.deleted_groups):
        tenant.hard_delete_group(pick(groups + sorted(tenant.deleted_groups)))
    elif op == "add_member" and groups:
        group = pick(groups)
        others = sorted(i for objects in tenant.others.values() for i in objects)
        candidates = [
            m for m in users + groups + others if m != group and m not in tenant.members[group]
        ]
        if candidates:
            tenant.add_member(group, pick(candidates))
    elif op == "remove_member" and groups:
        group = pick(groups)
        if tenant.members[group]:
            tenant.remove_member(group, pick(sorted(tenant.members[group])))
    elif op == "delete_other":
        others = sorted(i for objects in tenant.others.values() for i in objects)
        if others:  # a device leaving every group must reach each group's replica
            tenant.delete_object(pick(others))
    elif op == "untracked_update" and users:
        tenant.update_user(pick(users), department=f"Dept {n}")  # not selected: not reported


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    rounds=st.lists(st.lists(st.sampled_from(OPS), max_size=12), min_size=1, max_size=5),
    minimal=st.booleans(),
    page_size=st.integers(min_value=1, max_value=40),
    member_chunk=st.integers(min_value=1, max_value=30),
    replay_round=st.integers(min_value=-1, max_value=4),
)
def test_applying_every_delta_round_converges_to_the_tenant(
    data: st.DataObject,
    rounds: list[list[str]],
    minimal: bool,
    page_size: int,
    member_chunk: int,
    replay_round: int,
) -> None:
    tenant = generate_tenant(users=30, groups=12, seed=4)
    identity = Identity(BASE, tenant.tenant_id, tenant.domain)
    service = GraphService(tenant, BASE, identity, Faults(), ResourceUnitBudget())
    service.delta.member_chunk = member_chunk
    replica = Replica(service, identity.mint_token(), minimal, page_size)
    replica.sync()
    assert (replica.users, replica.groups) == _expected(tenant)
    counter = [0]
    for index, ops in enumerate(rounds):
        for op in ops:
            _mutate(tenant, data, op, counter)
        if index == replay_round:
            service.delta.replay()
        replica.sync()
        users, groups = _expected(tenant)
        assert replica.users == users
        assert replica.groups == groups
