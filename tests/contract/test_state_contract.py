"""The state contract: every backend (local file, PostgreSQL, Azure Blob) keeps state and
locks the same way, against the real servers (``tests/servers``)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncctl.errors import LockHeldError
from syncctl.state import LastRun, State, StateError
from syncctl.state.backend import StateBackend, StateConflictError, open_backend
from syncctl.state.migrate import migrate_state
from tests.contract.state_child import Holder, hold_lock
from tests.contract.state_store import StateStore, policy_for, write_policy

TENANT = "contoso.onmicrosoft.com"
TTL = timedelta(hours=6)


@pytest.fixture(params=["local", "postgres", "azure_blob"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    found: StateStore = request.getfixturevalue(f"{request.param}_state_store")
    with found.environment():
        yield found


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return tmp_path / "policies"


def backend(policies: Path, store: StateStore, name: str = "vault", **kw: str) -> StateBackend:
    return open_backend(policy_for(policies, name, store, **kw))


def a_state(name: str = "vault", *, managed: tuple[str, ...] = ("id-1", "id-2")) -> State:
    run = LastRun("apply", "2026-12-01T10:00:00Z", "2026-12-01T10:01:00Z", "success", {"c": 2})
    return State(
        name,
        frozenset(managed),
        disabled_at={"id-2": datetime(2026, 11, 30, 8, 0, tzinfo=UTC)},
        last_run=run,
        last_apply=run,
        synced={"id-1": "0" * 32},
        tenant=TENANT,
    )


@pytest.fixture
def holder(policies: Path, store: StateStore) -> Iterator[Holder]:
    """Another process holding the lock of policy "vault" (15 s leases on Blob)."""
    held = hold_lock(write_policy(policies, "vault", store), store.env, lease_seconds=15)
    try:
        yield held
    finally:
        held.kill()


def take_within(store_backend: StateBackend, seconds: float) -> None:
    store_backend.lock(operation="plan", timeout=seconds, ttl=TTL).release()


# -- state -----------------------------------------------------------------------------------


def test_a_fresh_store_holds_no_state_and_no_lock(policies: Path, store: StateStore) -> None:
    fresh = backend(policies, store)
    assert fresh.load() is None
    assert fresh.read_lock() is None
    assert fresh.kind == store.kind


def test_state_round_trips_between_two_runners(policies: Path, store: StateStore) -> None:
    first, second = backend(policies, store), backend(policies, store)
    assert first.load() is None
    first.save(a_state())
    assert second.load() == a_state()
    again = a_state(managed=("id-1", "id-2", "id-3"))
    first.save(again)  # the writer's own saves follow each other without conflict
    assert backend(policies, store).load() == again


def test_a_concurrent_writer_is_detected_never_overwritten(
    policies: Path, store: StateStore
) -> None:
    first, second = backend(policies, store), backend(policies, store)
    assert first.load() is None and second.load() is None
    first.save(a_state(managed=("from-first",)))
    with pytest.raises(StateConflictError):
        second.save(a_state(managed=("from-second",)))
    assert backend(policies, store).load() == a_state(managed=("from-first",))
    assert second.load() == a_state(managed=("from-first",))
    second.save(a_state(managed=("from-second",)))  # after reading again it may write
    with pytest.raises(StateConflictError):
        first.save(a_state(managed=("first-again",)))
    assert backend(policies, store).load() == a_state(managed=("from-second",))


def test_states_are_keyed_by_policy_and_tenant(policies: Path, store: StateStore) -> None:
    vault = backend(policies, store, "vault")
    vault.load()
    vault.save(a_state("vault"))
    other = backend(policies, store, "wiki")
    assert other.load() is None
    other.save(a_state("wiki", managed=("w-1",)))
    elsewhere = backend(policies / "fabrikam", store, "crm", tenant="fabrikam.onmicrosoft.com")
    elsewhere.load()
    elsewhere.save(State("crm", frozenset({"f-1"}), tenant="fabrikam.onmicrosoft.com"))
    listed = {s.policy: s.managed for s in backend(policies, store, "vault").list_states()}
    assert listed == {"vault": {"id-1", "id-2"}, "wiki": {"w-1"}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format_version": 99, "policy": "vault"}), "newer syncctl"),
        (json.dumps({"format_version": 2, "policy": "vault", "managed": 7}), "malformed"),
    ],
)
def test_a_corrupt_or_newer_state_is_a_one_line_error_never_an_empty_state(
    policies: Path, store: StateStore, document: str, message: str
) -> None:
    fresh = backend(policies, store)
    store.write_raw("vault", TENANT, document)
    with pytest.raises(StateError, match=message) as error:
        fresh.load()
    assert "\n" not in str(error.value)


# -- locks -----------------------------------------------------------------------------------


def test_the_lock_keeps_a_second_process_out_until_released(
    policies: Path, store: StateStore, holder: Holder
) -> None:
    mine = backend(policies, store)
    with pytest.raises(LockHeldError) as refused:
        mine.lock(operation="plan", timeout=0.0, ttl=TTL)
    assert holder.lock_id in str(refused.value)
    assert f"syncctl force-unlock vault {holder.lock_id}" in str(refused.value)
    seen = mine.read_lock()
    assert seen is not None and seen.id == holder.lock_id and seen.policy == "vault"
    assert holder.ask("check") == "ok"
    holder.release()
    assert mine.read_lock() is None
    take_within(mine, 0.0)


def test_a_killed_holder_frees_the_lock_by_itself(
    policies: Path, store: StateStore, holder: Holder
) -> None:
    mine = backend(policies, store)
    with pytest.raises(LockHeldError):
        mine.lock(operation="plan", timeout=0.0, ttl=TTL)
    holder.process.send_signal(signal.SIGKILL)
    holder.process.wait(timeout=60)
    started = time.monotonic()
    take_within(mine, 120.0)  # Blob: the lease (15 s here, 60 s in syncctl) runs out
    assert time.monotonic() - started < 120.0


def test_force_unlock_needs_the_lock_id_and_frees_the_lock(
    policies: Path, store: StateStore, holder: Holder
) -> None:
    mine = backend(policies, store)
    with pytest.raises(StateError, match="does not match"):
        mine.force_unlock("not-the-id")
    assert holder.ask("check") == "ok"
    removed = mine.force_unlock(holder.lock_id)
    assert removed.id == holder.lock_id
    take_within(mine, 30.0)
    assert holder.ask("check") == "lost"
    with pytest.raises(StateError, match="not locked"):
        mine.force_unlock(holder.lock_id)


# -- migrate ---------------------------------------------------------------------------------


def test_migrate_copies_from_a_local_file_and_never_over_a_newer_state(
    tmp_path: Path, store: StateStore
) -> None:
    local = StateStore(kind="local", section={"backend": "local"})
    source = backend(tmp_path / "before", local)
    source.load()
    source.save(a_state())
    destination = backend(tmp_path / "after", store)
    done = migrate_state(source, destination, policy="vault", ttl=TTL)
    assert not done.already_there and done.state == a_state()
    assert backend(tmp_path / "after", store).load() == a_state()
    assert migrate_state(source, destination, policy="vault", ttl=TTL).already_there

    later = LastRun("apply", "2026-12-02T10:00:00Z", "2026-12-02T10:01:00Z", "success")
    used = backend(tmp_path / "after", store)
    used.load()
    used.save(a_state().with_last_run(later))
    with pytest.raises(StateError, match="newer state"):
        migrate_state(source, backend(tmp_path / "after", store), policy="vault", ttl=TTL)
    assert backend(tmp_path / "after", store).load() == a_state().with_last_run(later)
