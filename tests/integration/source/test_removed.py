"""Why managed objects left, asked of Graph: hard_deleted > soft_deleted > disabled >
out_of_scope, via getByIds (1,000 ids a request) and the deleted-items lists."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.errors import GraphError
from syncctl.model import RemovalReason
from syncctl.policy.model import GroupSelector
from syncctl.source import read_source
from tests.integration.source.conftest import SECRET_ENV, emulator_policy, graph_requests


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with running_emulator(generate_tenant(users=300, groups=12, seed=5)) as emu:
        monkeypatch.setenv(SECRET_ENV, emu.client_secret)
        yield emu


def _by_name(emu: Emulator, name: str) -> str:
    group = emu.tenant.group_by_name(name)
    assert group is not None
    return str(group["id"])


def test_each_reason_is_reported_from_graph(fresh: Emulator) -> None:
    emu = fresh
    tenant = emu.tenant
    pm_m365 = tenant.create_group(displayName="PM-Shared", groupTypes=["Unified"], mailEnabled=True)
    policy = emulator_policy(emu, groups=(GroupSelector(pattern="^PM-"),))
    before = read_source(policy, ())
    scope = _by_name(emu, "Password Manager Users")
    direct_only = sorted(
        u
        for u in tenant.members[scope]
        if u in before.users
        and not any(
            u in tenant.members[g]
            for g in tenant.groups
            if g != scope and "Password" in tenant.groups[g]["displayName"]
        )
    )
    disabled, soft, hard, left, stays = direct_only[:5]
    tenant.disable_user(disabled)
    tenant.soft_delete_user(soft)
    tenant.hard_delete_user(hard)
    tenant.remove_member(scope, left)
    pm_security = _by_name(emu, "PM-Finance")
    tenant.hard_delete_group(pm_security)
    tenant.soft_delete_group(pm_m365)
    never = str(uuid.UUID(int=1))
    guest = next(
        u for u in tenant.members[scope] if tenant.users.get(u, {}).get("userType") == "Guest"
    )

    managed = [disabled, soft, hard, left, stays, pm_security, pm_m365, never, guest]
    after = read_source(policy, managed)
    assert after.removed == {
        disabled: RemovalReason.DISABLED,
        soft: RemovalReason.SOFT_DELETED,
        hard: RemovalReason.HARD_DELETED,
        left: RemovalReason.OUT_OF_SCOPE,
        pm_security: RemovalReason.HARD_DELETED,
        pm_m365: RemovalReason.SOFT_DELETED,
        never: RemovalReason.HARD_DELETED,
        guest: RemovalReason.OUT_OF_SCOPE,
    }
    assert stays in after.users


def test_get_by_ids_is_chunked_by_1000_and_asks_only_for_managed_ids(fresh: Emulator) -> None:
    policy = emulator_policy(fresh, groups=(GroupSelector(name="Vault Admins"),))
    missing = [str(uuid.UUID(int=i + 10)) for i in range(1500)]
    fresh.reset_requests()
    snapshot = read_source(policy, missing)
    assert set(snapshot.removed) == set(missing)
    assert set(snapshot.removed.values()) == {RemovalReason.HARD_DELETED}
    posts = [r for r in graph_requests(fresh) if r[1] == "/v1.0/directoryObjects/getByIds"]
    assert len(posts) == 4  # 2 chunks as users, then 2 chunks as groups


def test_no_managed_ids_means_no_removal_requests(fresh: Emulator) -> None:
    fresh.reset_requests()
    read_source(emulator_policy(fresh), ())
    assert not [r for r in graph_requests(fresh) if "getByIds" in r[1] or "deletedItems" in r[1]]


def test_failing_removal_lookup_fails_the_read(fresh: Emulator) -> None:
    fresh.faults.add(path="getByIds", method="POST", status=403, times=None)
    with pytest.raises(GraphError, match=r"POST /directoryObjects/getByIds: .*status 403"):
        read_source(emulator_policy(fresh), [str(uuid.UUID(int=3))])


def test_ambiguous_group_name_lists_candidates(fresh: Emulator) -> None:
    fresh.tenant.create_group(displayName="vault admins")
    policy = emulator_policy(fresh, groups=(GroupSelector(name="Vault Admins"),))
    with pytest.raises(
        GraphError, match=r'group name "Vault Admins" matches 2 groups: .*object id'
    ):
        read_source(policy, ())
