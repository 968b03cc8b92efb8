"""The incremental read equals a full read: random Entra changes against the TLS emulator,
then the slice kept by delta rounds and a fresh full read must give the planner the same
SourceSnapshot, the same flattened slice and the same plan.

Each example starts from a full read (as a first run does), then makes one to three runs:
tenant mutations, random delta paging (small pages and member slices, so a group's members
span pages and a group repeats), sometimes a replayed round; per run the cache goes through
``encode``/``decode`` as the engine stores it. Managed ids are every id that was ever in
scope in the example, plus one id Graph never had.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.emulator.tenant import EmulatorTenant
from syncctl.model import SourceSnapshot, TargetSnapshot
from syncctl.plan.model import PolicyPlan
from syncctl.plan.planner import plan_policy
from syncctl.policy.model import GroupSelector, Policy
from syncctl.source.cache import TenantCache, decode
from syncctl.source.incremental import SourceSync, SyncedSlice, source_sync
from tests.integration.source.conftest import SECRET_ENV, emulator_policy

SCOPE = "Password Manager Users"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NEVER_SEEN = str(uuid.UUID(int=7, version=4))

OPS = (
    "new_user",
    "update_user",
    "clear_department",
    "disable",
    "enable",
    "soft_delete",
    "restore",
    "hard_delete",
    "add_member",
    "remove_member",
    "nest_new_group",
    "nest_existing",
    "unnest",
    "delete_nested_group",
    "rename_group",
    "describe_selected_group",
    "outside_user_change",
    "new_pm_group",
    "restore_group",
    "other_member",
    "rename_selected",
    "leave_scope",
)
VARIANTS = ("names", "ids", "flat")


@pytest.fixture(scope="module")
def property_emulator() -> Iterator[Emulator]:
    with running_emulator(generate_tenant(users=150, groups=12, seed=5)) as emulator:
        yield emulator


@pytest.fixture
def emu(property_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv(SECRET_ENV, property_emulator.client_secret)
    yield property_emulator
    property_emulator.service.delta.page_size = property_emulator.service.delta.member_chunk = 100


@dataclass
class Mutator:
    """Applies one drawn operation to the tenant; indexes pick among what exists now."""

    tenant: EmulatorTenant
    variant: str
    made: list[str] = field(default_factory=list)  # groups created by the test
    renamed: dict[str, str] = field(default_factory=dict)  # selected group -> its name
    scope_id: str = ""
    vault_id: str = ""

    def __post_init__(self) -> None:
        self.scope_id, self.vault_id = (
            _group(self.tenant, SCOPE),
            _group(self.tenant, "Vault Admins"),
        )

    def undo_renames(self) -> None:
        """Selected groups get their names back (the next example selects them by name)."""
        for group_id, name in self.renamed.items():
            self.tenant.update_group(group_id, displayName=name)
        self.renamed.clear()

    def structure(self) -> list[str]:
        """Groups of the scope's nested structure and the provisioned ones (live)."""
        t = self.tenant
        names = ("Password Manager Users", "PM-")
        found = [
            g for g in t.sorted_ids("groups") if str(t.groups[g]["displayName"]).startswith(names)
        ]
        found = sorted({self.scope_id, self.vault_id, *found})
        return [*found, *(g for g in self.made if g in t.groups and g not in found)]

    def renameable(self) -> list[str]:
        return [g for g in self.structure() if g not in (self.scope_id, self.vault_id)]

    def apply(self, op: str, a: int, b: int) -> None:
        t = self.tenant
        users = list(t.sorted_ids("users"))
        # half the picks among the scope's users: where delta must get reasons right
        reached = [u for u in t.transitive_members(self.scope_id) if u in t.users]
        pool = reached if a % 2 and reached else users
        picked = pool[(a // 2) % len(pool)]
        structure = self.structure()
        scope_id = self.scope_id
        if op == "new_user":
            props: dict[str, Any] = {
                "displayName": f"Hire {t.seq}",
                "userPrincipalName": f"hire{t.seq}@example.test",
            }
            if a % 2:
                props["department"] = f"Dept {b % 3}"  # else never set: omitted by delta
            t.add_member(structure[b % len(structure)], t.create_user(**props))
        elif op == "update_user" and users:
            t.update_user(picked, department=f"Dept {b % 5}")
        elif op == "clear_department" and users:
            t.update_user(picked, department=None)
        elif op in ("disable", "enable") and users:
            t.update_user(picked, accountEnabled=op == "enable")
        elif op == "soft_delete" and users:
            t.soft_delete_user(picked)
        elif op == "restore" and t.deleted_users:
            deleted = t.sorted_ids("deleted_users")
            t.restore_user(deleted[a % len(deleted)])
        elif op == "hard_delete" and users:
            pool = [*users, *t.sorted_ids("deleted_users")] if b % 2 else users
            t.hard_delete_user(pool[a % len(pool)])
        elif op == "add_member" and users:
            group_id, user_id = structure[b % len(structure)], users[a % len(users)]
            if user_id not in t.members.get(group_id, set()):
                t.add_member(group_id, user_id)
        elif op == "remove_member":
            group_id = structure[b % len(structure)]
            members = [m for m in t.live_members(group_id) if m in t.users]
            if members:
                t.remove_member(group_id, members[a % len(members)])
        elif op == "nest_new_group":
            kinds = ["Unified"] if a % 2 else []  # a Microsoft 365 group can be restored
            nested = t.create_group(displayName=f"Nest {t.seq}", groupTypes=kinds)
            self.made.append(nested)
            for user_id in users[a % len(users) :][: 1 + b % 3]:
                t.add_member(nested, user_id)
            t.add_member(structure[b % len(structure)], nested)
        elif op == "nest_existing":
            child, parent = structure[a % len(structure)], structure[b % len(structure)]
            if child not in (parent, scope_id) and child not in t.members.get(parent, set()):
                t.add_member(parent, child)
        elif op == "unnest":
            pairs = [(g, m) for g in structure for m in t.live_members(g) if m in t.groups]
            if pairs:
                t.remove_member(*pairs[a % len(pairs)])
        elif op == "delete_nested_group":
            doomed = [
                g for g in self.renameable() if not t.groups[g]["displayName"].startswith("PM-")
            ]
            if doomed:  # a security group is deleted for good, a Microsoft 365 one softly
                t.soft_delete_group(doomed[a % len(doomed)])
        elif op == "rename_group":
            groups = self.renameable()
            if groups:
                prefix = "PM-" if b % 3 == 0 else "Renamed "
                t.update_group(groups[a % len(groups)], displayName=f"{prefix}{t.seq}")
        elif op == "describe_selected_group":
            selected = [scope_id, self.vault_id]
            t.update_group(selected[a % 2], description=f"About {b}" if b % 3 else None)
        elif op == "outside_user_change":
            outside = [u for u in users if u not in set(reached)]
            if outside:
                t.update_user(outside[a % len(outside)], displayName=f"Outsider {t.seq}")
        elif op == "leave_scope" and reached:
            # out of every group under the scope, and maybe disabled (before or later)
            user_id = reached[a % len(reached)]
            if b % 3 == 1:
                t.disable_user(user_id)
            under = {scope_id, *(g for g in t.transitive_members(scope_id) if g in t.groups)}
            for group_id in sorted(set(t.groups_containing(user_id)) & under):
                t.remove_member(group_id, user_id)
            if b % 3 == 2:
                t.disable_user(user_id)
        elif op == "restore_group" and t.deleted_groups:
            deleted = t.sorted_ids("deleted_groups")
            t.restore_group(deleted[a % len(deleted)])
        elif op == "other_member":
            others = sorted(i for objects in t.others.values() for i in objects)
            group_id, other = structure[b % len(structure)], others[a % len(others)]
            if other in t.members.get(group_id, set()):
                t.remove_member(group_id, other)
            else:
                t.add_member(group_id, other)
        elif op == "rename_selected" and self.variant == "ids":
            selected = [scope_id, self.vault_id]
            group_id = selected[a % len(selected)]
            self.renamed.setdefault(group_id, str(t.groups[group_id]["displayName"]))
            t.update_group(group_id, displayName=f"Selected by id {t.seq}")
        elif op == "new_pm_group":
            made = t.create_group(displayName=f"PM-New {t.seq}")
            self.made.append(made)
            if users:
                t.add_member(made, users[a % len(users)])


def _group(tenant: EmulatorTenant, name: str) -> str:
    found = tenant.group_by_name(name)
    assert found is not None
    return str(found["id"])


def _policy(emu: Emulator, variant: str, mutator: Mutator) -> Policy:
    """``names``: the default policy (scope and Vault Admins by name, ``^PM-`` groups);
    ``ids``: selected by object id, so renames are applied in place; ``flat``: not nested."""
    if variant == "ids":
        return emulator_policy(
            emu, scope_groups=(mutator.scope_id,), groups=(GroupSelector(id=mutator.vault_id),)
        )
    if variant == "flat":
        return emulator_policy(emu, nested=False)
    return emulator_policy(emu)


def _full(sync: SourceSync, managed: list[str]) -> tuple[SyncedSlice, SourceSnapshot]:
    synced = sync.read(None, {}, full_reason="test", managed=managed)
    assert synced.full
    return synced, sync.evaluate(synced, managed)


def _incremental(
    sync: SourceSync,
    cache: TenantCache,
    links: dict[str, str],
    managed: list[str],
    full_reason: str | None,
) -> tuple[SyncedSlice, SourceSnapshot]:
    synced = sync.read(cache, links, full_reason=full_reason, managed=managed)
    return synced, sync.evaluate(synced, managed)


def _plan(policy: Policy, source: SourceSnapshot) -> PolicyPlan:
    empty = TargetSnapshot(users=(), groups=(), members={})
    return plan_policy(policy, source, empty, disabled_at={}, now=NOW)


def _round_trip(cache: TenantCache) -> TenantCache:
    name, data = cache.encode()
    restored = decode(name, data)
    assert restored == cache
    return restored


operation = st.tuples(st.sampled_from(OPS), st.integers(0, 999), st.integers(0, 999))
run = st.tuples(
    st.lists(operation, min_size=1, max_size=6),
    st.integers(1, 4),  # delta page size
    st.integers(1, 3),  # members@delta slice
    st.booleans(),  # replay the previous round
    st.sampled_from(["delta"] * 4 + ["--refresh"]),  # a refresh also runs (and checks) delta
)
Run = tuple[list[tuple[str, int, int]], int, int, bool, str]


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(variant=st.sampled_from(VARIANTS), runs=st.lists(run, min_size=1, max_size=3))
def test_incremental_read_equals_full_read(emu: Emulator, variant: str, runs: list[Run]) -> None:
    mutator = Mutator(emu.tenant, variant)
    policy = _policy(emu, variant, mutator)
    try:
        with source_sync(policy) as sync:  # one signed-in session: the test is about reads
            _check_runs(emu, policy, sync, mutator, runs)
    finally:
        mutator.undo_renames()


def _check_runs(
    emu: Emulator,
    policy: Policy,
    sync: SourceSync,
    mutator: Mutator,
    runs: list[Run],
) -> None:
    emu.service.delta.page_size, emu.service.delta.member_chunk = 100, 100
    managed_set = {NEVER_SEEN}
    start, snapshot = _full(sync, sorted(managed_set))
    managed_set |= {*snapshot.users, *snapshot.groups}
    cache, links = _round_trip(start.cache), start.links
    for operations, page_size, member_chunk, replay, mode in runs:
        for op, a, b in operations:
            mutator.apply(op, a, b)
        emu.service.delta.page_size, emu.service.delta.member_chunk = page_size, member_chunk
        if replay:
            emu.replay_delta()
        managed = sorted(managed_set)
        stored = cache.encode()[0]
        full_reason = None if mode == "delta" else mode
        synced, incremental = _incremental(sync, cache, links, managed, full_reason)
        # no change happens while reading: a refresh must find nothing delta did not report
        assert not [n for n in synced.notes if "warning" in n]
        if not synced.changed:
            # the engine keeps the stored blob then: the slice must really be the same
            assert synced.cache.encode()[0] == stored
        emu.service.delta.page_size, emu.service.delta.member_chunk = 100, 100
        full_synced, full = _full(sync, managed)
        event(f"{mutator.variant} {mode}: {'read in full' if synced.full else 'delta'}")
        assert incremental == full
        assert synced.cache.flatten() == full_synced.cache.flatten()
        assert synced.cache.scope == full_synced.cache.scope
        assert synced.cache.provisioned == full_synced.cache.provisioned
        assert _plan(policy, incremental) == _plan(policy, full)
        managed_set |= {*full.users, *full.groups}
        cache, links = _round_trip(synced.cache), synced.links
