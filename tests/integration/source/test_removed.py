"""Why managed objects left, asked of Graph: hard_deleted > soft_deleted > disabled >
out_of_scope, via getByIds (1,000 ids a request) and each remaining id looked up on its own
(deleted items, then live objects); short or empty answers abort the read, never delete."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.emulator.faults import drop_items, empty_value
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


def _leavers(emu: Emulator) -> dict[str, str]:
    """Managed users that left the scope in each way, plus a group gone for good."""
    tenant = emu.tenant
    scope = _by_name(emu, "Password Manager Users")
    direct = sorted(
        u for u in tenant.members[scope] if tenant.users.get(u, {}).get("accountEnabled") is True
    )
    left, disabled, soft, hard = direct[:4]
    tenant.remove_member(scope, left)
    tenant.remove_member(scope, disabled)
    tenant.disable_user(disabled)
    tenant.soft_delete_user(soft)
    tenant.hard_delete_user(hard)
    return {"left": left, "disabled": disabled, "soft": soft, "hard": hard}


def test_an_empty_get_by_ids_answer_aborts_the_read_instead_of_deleting(fresh: Emulator) -> None:
    """getByIds answering 200 {"value": []}: live users that merely left scope must not be
    taken for hard-deleted (they would be deleted in the target)."""
    leavers = _leavers(fresh)
    fresh.faults.add(path="getByIds", method="POST", status=None, rewrite=empty_value, times=None)
    with pytest.raises(GraphError) as caught:
        read_source(emulator_policy(fresh), sorted(leavers.values()))
    message = str(caught.value)
    assert message.startswith("policy test-policy: Graph's answers disagree about 2 id(s)")
    assert leavers["left"] in message and leavers["disabled"] in message
    assert "nothing is planned from this read" in message and "\n" not in message


def test_a_short_get_by_ids_answer_aborts_the_read(fresh: Emulator) -> None:
    leavers = _leavers(fresh)
    fresh.faults.add(path="getByIds", method="POST", status=None, rewrite=drop_items(1), times=1)
    with pytest.raises(GraphError, match="Graph's answers disagree about 1 id"):
        read_source(emulator_policy(fresh), sorted([leavers["left"], leavers["disabled"]]))


def test_soft_deleted_users_are_found_by_id_even_if_the_listing_is_empty(fresh: Emulator) -> None:
    leavers = _leavers(fresh)
    fresh.faults.add(path="deletedItems", status=None, rewrite=empty_value, times=None)
    fresh.reset_requests()
    removed = read_source(emulator_policy(fresh), sorted(leavers.values())).removed
    assert removed == {
        leavers["left"]: RemovalReason.OUT_OF_SCOPE,
        leavers["disabled"]: RemovalReason.DISABLED,
        leavers["soft"]: RemovalReason.SOFT_DELETED,
        leavers["hard"]: RemovalReason.HARD_DELETED,
    }
    assert not [
        r for r in graph_requests(fresh) if "microsoft.graph.user" in r[1] and "deleted" in r[1]
    ]


def test_an_empty_deleted_item_answer_is_not_proof_of_anything(fresh: Emulator) -> None:
    """A 200 for the soft-deleted user's own lookup that does not describe it."""
    leavers = _leavers(fresh)
    fresh.faults.add(
        path=f"deletedItems/{leavers['soft']}", status=None, rewrite=lambda b: {}, times=None
    )
    with pytest.raises(GraphError, match=rf"GET /directory/deletedItems/{leavers['soft']}: "):
        read_source(emulator_policy(fresh), [leavers["soft"]])


@pytest.mark.parametrize("lookup", ["deletedItems/", "directoryObjects/"])
def test_a_failing_lookup_by_id_fails_the_read_never_guessing(fresh: Emulator, lookup: str) -> None:
    leavers = _leavers(fresh)
    fresh.faults.add(path=lookup + leavers["hard"], status=403, times=None)
    with pytest.raises(GraphError) as caught:
        read_source(emulator_policy(fresh), [leavers["hard"]])
    message = str(caught.value)
    assert f"/{leavers['hard']}: " in message and "status 403" in message
