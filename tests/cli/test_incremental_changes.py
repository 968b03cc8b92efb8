"""Every kind of change an Entra admin makes is planned on the next incremental run exactly
as a full read would plan it, for a handful of Graph requests; once applied, the cron loop
is back to two requests a run. Through the real ``syncctl`` binary and the Graph emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncctl.emulator import Emulator
from tests.cli.delta_workspace import (
    DEEPEST,
    NESTED,
    SCOPE,
    Workspace,
    changes,
    delta_emulator,
    group_id,
    scope_user,
)

pytestmark = pytest.mark.slow  # every case runs the real binary four times

MAX_INCREMENTAL_GETS = 10


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with delta_emulator(seed=23) as emu:
        yield emu


@pytest.fixture(scope="module")
def space(module_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One converged workspace the cases change in turn (each leaves it converged)."""
    workspace = Workspace.create(module_emulator, tmp_path_factory.mktemp("changes") / "ws")
    workspace.converge()
    return workspace


def _only_in_deepest(emu: Emulator, managed: set[str]) -> str:
    """A managed user reachable from the scope group only through the deepest nested group."""
    tenant = emu.tenant
    above = set().union(*(tenant.live_members(group_id(emu, g)) for g in (SCOPE, *NESTED)))
    for user in tenant.live_members(group_id(emu, DEEPEST)):
        if user in managed and user not in above and tenant.users[user]["accountEnabled"]:
            return user
    raise AssertionError("no user is in scope only through the deepest nested group")


# A change made in Entra, and what the plan must do about it: the user and group changes
# (action and Entra id); membership changes may only concern that one object.
Expected = tuple[list[tuple[str, str]], str]


def disable(emu: Emulator, space: Workspace) -> Expected:
    user = scope_user(emu, space.managed(), index=0)
    emu.tenant.disable_user(user)
    return [("disable", user)], user


def removal_from_a_nested_group(emu: Emulator, space: Workspace) -> Expected:
    user = _only_in_deepest(emu, space.managed())
    emu.tenant.remove_member(group_id(emu, DEEPEST), user)
    return [("disable", user)], user


def soft_delete(emu: Emulator, space: Workspace) -> Expected:
    user = scope_user(emu, space.managed(), index=1)
    emu.tenant.soft_delete_user(user)
    return [("disable", user)], user


def new_hire_in_a_nested_group(emu: Emulator, space: Workspace) -> Expected:
    hire = emu.tenant.create_user(
        displayName="Nadia New",
        userPrincipalName=f"nadia.new@{emu.tenant.domain}",
        givenName="Nadia",
        surname="New",
        accountEnabled=True,
    )
    emu.tenant.add_member(group_id(emu, NESTED[1]), hire)
    emu.tenant.add_member(group_id(emu, "Vault Admins"), hire)
    return [("create", hire)], hire


def user_rename(emu: Emulator, space: Workspace) -> Expected:
    user = scope_user(emu, space.managed(), index=2)
    emu.tenant.update_user(
        user, displayName="Renata Renamed", userPrincipalName=f"renata.renamed@{emu.tenant.domain}"
    )
    return [("update", user)], user


def provisioned_group_rename(emu: Emulator, space: Workspace) -> Expected:
    """Vault Admins is provisioned by object id: renaming it selects no other group."""
    group = group_id(emu, "Vault Admins")
    emu.tenant.update_group(group, displayName="Vault Administrators")
    return [("update", group)], group


def nested_group_rename(emu: Emulator, space: Workspace) -> Expected:
    """A nested group's name is not provisioned: nothing to do."""
    group = group_id(emu, NESTED[0])
    emu.tenant.update_group(group, displayName="PMU - Europe")
    return [], group


Change = Callable[[Emulator, Workspace], Expected]
CASES: dict[str, Change] = {
    "disable": disable,
    "removal from a nested group": removal_from_a_nested_group,
    "soft delete": soft_delete,
    "new hire in a nested group": new_hire_in_a_nested_group,
    "user rename": user_rename,
    "provisioned group rename": provisioned_group_rename,
    "nested group rename": nested_group_rename,
}


@pytest.mark.parametrize("case", CASES)
def test_an_entra_change_is_planned_as_a_full_read_plans_it(
    emu: Emulator, space: Workspace, tmp_path: Path, case: str
) -> None:
    space.converge()  # whatever an earlier case left (it should have left nothing)
    expected, subject = CASES[case](emu, space)
    twin = space.copy(tmp_path / "twin")  # the same state and target, read in full

    incremental, plan = space.plan_json()
    gets = [path for method, path, _ in incremental.graph if method == "GET"]
    assert len(gets) <= MAX_INCREMENTAL_GETS, incremental
    assert "reading Graph in full" not in incremental.stderr, incremental  # delta did it
    refreshed, full = twin.plan_json("--refresh")
    assert "emu: reading Graph in full: --refresh" in refreshed.stderr, refreshed
    assert "warning" not in refreshed.stderr, refreshed  # delta reported everything
    assert plan == full
    planned = changes(plan)
    objects = [(c["action"], c["source_id"]) for c in planned if c["kind"] != "membership"]
    assert objects == expected, planned
    memberships = [c for c in planned if c["kind"] == "membership"]
    assert all(subject in (c["user"], c["group"]) for c in memberships), memberships

    space.converge()
    space.assert_quiet(1)
