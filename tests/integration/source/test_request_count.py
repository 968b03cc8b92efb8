"""Requests on a 10,000-user tenant, counted at the emulator against the formula in
syncctl/source/reader.py (docs/source.md), computed here from the raw directory."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from syncctl.emulator import Emulator, EmulatorTenant, generate_tenant, running_emulator
from syncctl.model import RemovalReason
from syncctl.policy.model import GroupSelector
from syncctl.source import read_source
from tests.integration.source.conftest import SECRET_ENV, emulator_policy, graph_requests

PAGE = 999


SOFT_DELETED = 30


@pytest.fixture(scope="module")
def big() -> Iterator[Emulator]:
    tenant = generate_tenant(users=10_000, groups=50, seed=7)
    for user_id in sorted(tenant.users)[:SOFT_DELETED]:
        tenant.soft_delete_user(user_id)
    with running_emulator(tenant) as emu:
        yield emu


def _direct(tenant: EmulatorTenant, group_id: str, kind: str) -> list[str]:
    store = tenant.users if kind == "user" else tenant.groups
    return [m for m in tenant.members.get(group_id, set()) if m in store]


def _reachable(tenant: EmulatorTenant, roots: list[str]) -> set[str]:
    seen, pending = set(roots), list(roots)
    while pending:
        for sub in _direct(tenant, pending.pop(), "group"):
            if sub not in seen:
                seen.add(sub)
                pending.append(sub)
    return seen


def _member_requests(tenant: EmulatorTenant, scope: list[str], provisioned: list[str]) -> int:
    """The reader's level-by-level read of direct members: per level, two first pages per
    group (its users, its nested groups), 20 to a $batch, then every further page."""
    seen: set[str] = set()
    total = 0
    for roots in (scope, provisioned):
        frontier = sorted(set(roots) - seen)
        while frontier:
            seen.update(frontier)
            total += math.ceil(2 * len(frontier) / 20)
            for group_id in frontier:
                total += _pages(len(_direct(tenant, group_id, "user"))) - 1
                total += _pages(len(_direct(tenant, group_id, "group"))) - 1
            nested = {n for g in frontier for n in _direct(tenant, g, "group")}
            frontier = sorted(nested - seen)
    return total


def _id(tenant: EmulatorTenant, name: str) -> str:
    (found,) = [g for g, v in tenant.groups.items() if v["displayName"] == name]
    return found


def _pages(count: int) -> int:
    return max(1, math.ceil(count / PAGE))  # an empty collection is still one page


@pytest.mark.parametrize("with_regex", [True, False])
def test_request_count_matches_the_formula(
    big: Emulator, monkeypatch: pytest.MonkeyPatch, with_regex: bool
) -> None:
    monkeypatch.setenv(SECRET_ENV, big.client_secret)
    tenant = big.tenant
    scope_names = ["All Company", "Password Manager Users"]
    named = ["Vault Admins", "PM-Finance"]
    selectors = [GroupSelector(name=n) for n in named]
    provisioned = [*named]
    if with_regex:
        selectors.append(GroupSelector(pattern="^PM-"))
        provisioned += [v["displayName"] for v in tenant.groups.values()]
        provisioned = sorted({n for n in provisioned if n in named or n.startswith("PM-")})
    policy = emulator_policy(big, scope_groups=tuple(scope_names), groups=tuple(selectors))
    in_scope = read_source(policy, ())
    # Managed ids out of scope: live users and groups, soft-deleted users, and ids gone.
    live_users = sorted(u for u in tenant.users if u not in in_scope.users)[:40]
    live_groups = sorted(g for g in tenant.groups if g not in in_scope.groups)[:5]
    soft = sorted(tenant.deleted_users)
    never = [str(uuid.UUID(int=i + 1)) for i in range(1200)]
    managed_gone = [*live_users, *live_groups, *soft, *never]

    big.reset_requests()
    snapshot = read_source(policy, managed_gone)
    sent = graph_requests(big)

    scope_ids = sorted(_id(tenant, n) for n in scope_names)
    provisioned_ids = sorted(_id(tenant, n) for n in provisioned)
    lookups = (
        _pages(len(tenant.groups))
        if with_regex
        else math.ceil((len(scope_names) + len(named)) / 20)
    )
    members = _member_requests(tenant, scope_ids, provisioned_ids)
    # Managed ids the slice itself explains (a user of a scope group, a group it read) need
    # no lookup; the rest are asked of Graph, each needing positive evidence.
    in_slice = _reachable(tenant, [*scope_ids, *provisioned_ids])
    candidates = {u for g in _reachable(tenant, scope_ids) for u in _direct(tenant, g, "user")}
    asked = [i for i in managed_gone if i not in candidates and i not in in_slice]
    asked_live_users = [i for i in asked if i in tenant.users]
    asked_live_groups = [i for i in asked if i in tenant.groups]
    not_users = len(asked) - len(asked_live_users)
    not_live = not_users - len(asked_live_groups)  # each looked up in deleted items by id
    gone = not_live - len(soft)  # each confirmed gone by GET /directoryObjects/{id}
    removed = (
        math.ceil(len(asked) / 1000)  # getByIds as users
        + math.ceil(not_users / 1000)  # the ids that are not users, as groups
        + math.ceil(not_live / 20)  # $batch of GET /directory/deletedItems/{id}
        + math.ceil(gone / 20)  # $batch of GET /directoryObjects/{id}
    )
    assert len(sent) == lookups + members + removed
    assert set(snapshot.removed.values()) == {
        RemovalReason.OUT_OF_SCOPE,
        RemovalReason.DISABLED,
        RemovalReason.SOFT_DELETED,
        RemovalReason.HARD_DELETED,
    }
    assert len(soft) == SOFT_DELETED
    # The bound: the pages of the member lists, plus one request per group read.
    minimum_pages = sum(_pages(len(_direct(tenant, g, "user"))) for g in in_slice)
    assert len(sent) - lookups - removed <= minimum_pages + 2 * len(in_slice)
    assert len(snapshot.users) > 9000
    # Every member page asked for the maximum page size and exactly the selected properties.
    member_pages = [r for r in sent if "/members/microsoft.graph.user" in r[1]]
    for _method, _path, query in member_pages:
        params = parse_qs(query)
        assert params["$top"] == ["999"]
        assert params["$select"][0] in (
            "accountEnabled,department,displayName,id,userPrincipalName,userType",
            "id",
        )
