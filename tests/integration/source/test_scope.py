"""Scope on a tenant with 3-level nested groups, guests, disabled users and scoping filters,
checked against an expectation computed here from the emulator's raw directory data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from syncctl.emulator import Emulator, EmulatorTenant, generate_tenant, running_emulator
from syncctl.errors import GraphError
from syncctl.policy.model import FilterClause, FilterOp, GroupSelector
from syncctl.source import read_source
from tests.integration.source.conftest import SECRET_ENV, emulator_policy

FILTERS = (
    (
        FilterClause("department", FilterOp.NOT_EQUALS, "Contractors"),
        FilterClause("jobTitle", FilterOp.IS_NOT_NULL),
    ),
    (
        FilterClause("department", FilterOp.EQUALS, "Contractors"),
        FilterClause("officeLocation", FilterOp.EQUALS, "Berlin"),
    ),
)


def _passes_filters(user: dict[str, Any]) -> bool:
    first = user.get("department") != "Contractors" and user.get("jobTitle") is not None
    second = user.get("department") == "Contractors" and user.get("officeLocation") == "Berlin"
    return first or second


def _group_id(tenant: EmulatorTenant, name: str) -> str:
    (found,) = [g for g, v in tenant.groups.items() if v["displayName"] == name]
    return found


def _members(tenant: EmulatorTenant, group_id: str, nested: bool) -> set[str]:
    users: set[str] = set()
    seen = {group_id}
    pending = [group_id]
    while pending:
        for member in tenant.members.get(pending.pop(), set()):
            if member in tenant.users:
                users.add(member)
            elif nested and member in tenant.groups and member not in seen:
                seen.add(member)
                pending.append(member)
    return users


@pytest.fixture(scope="module")
def nested_emulator() -> Iterator[Emulator]:
    tenant = generate_tenant(users=600, groups=20, seed=23)
    # A provisioned group whose members sit three levels down: only flattening finds them.
    berlin = _group_id(tenant, "Password Manager Users - Berlin")
    nested = tenant.create_group(displayName="PM-Nested", description="nests Berlin")
    tenant.add_member(nested, berlin)
    with running_emulator(tenant) as emu:
        yield emu


@pytest.mark.parametrize(
    ("nested", "guests", "disabled", "filters"),
    [(True, False, False, True), (False, False, False, False), (True, True, True, False)],
)
def test_scope_matches_independent_expectation(
    nested_emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    nested: bool,
    guests: bool,
    disabled: bool,
    filters: bool,
) -> None:
    emu = nested_emulator
    monkeypatch.setenv(SECRET_ENV, emu.client_secret)
    tenant = emu.tenant
    policy = emulator_policy(
        emu,
        nested=nested,
        include_guests=guests,
        include_disabled=disabled,
        filters=FILTERS if filters else (),
        groups=(GroupSelector(name="Vault Admins"), GroupSelector(pattern="^PM-")),
    )
    snapshot = read_source(policy, managed_ids=())

    candidates = _members(tenant, _group_id(tenant, "Password Manager Users"), nested)
    expected = {
        u
        for u in candidates
        if (guests or tenant.users[u]["userType"] != "Guest")
        and (disabled or tenant.users[u]["accountEnabled"] is True)
        and (not filters or _passes_filters(tenant.users[u]))
    }
    # The tenant really exercises every rule (else this test would prove nothing).
    assert any(tenant.users[u]["userType"] == "Guest" for u in candidates)
    assert any(tenant.users[u]["accountEnabled"] is False for u in candidates)
    if not nested:
        assert candidates < _members(tenant, _group_id(tenant, "Password Manager Users"), True)
    assert set(snapshot.users) == expected
    for user_id in expected:
        attributes = snapshot.users[user_id].attributes
        raw = tenant.users[user_id]
        for name in ("id", "userPrincipalName", "department", "accountEnabled", "userType"):
            assert attributes[name] == raw.get(name)
        if filters:
            assert attributes["jobTitle"] == raw.get("jobTitle")

    provisioned = {
        g: v["displayName"]
        for g, v in tenant.groups.items()
        if v["displayName"] == "Vault Admins" or re.search("^PM-", v["displayName"])
    }
    assert set(snapshot.groups) == set(provisioned)
    for group_id, name in provisioned.items():
        want = tuple(sorted(_members(tenant, group_id, nested) & expected))
        assert snapshot.groups[group_id].members == want, name
    pm_nested = _group_id(tenant, "PM-Nested")
    assert bool(snapshot.groups[pm_nested].members) == nested


def test_scope_group_by_id_reads_the_same(
    nested_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, nested_emulator.client_secret)
    scope_id = _group_id(nested_emulator.tenant, "Password Manager Users")
    by_name = read_source(emulator_policy(nested_emulator), ())
    by_id = read_source(emulator_policy(nested_emulator, scope_groups=(scope_id,)), ())
    assert by_id.fingerprint() == by_name.fingerprint()


def test_unknown_scope_group_fails_instead_of_reading_nobody(
    nested_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, nested_emulator.client_secret)
    policy = emulator_policy(nested_emulator, scope_groups=("Password Manager Userz",))
    with pytest.raises(GraphError, match='no group is named "Password Manager Userz"'):
        read_source(policy, ())
