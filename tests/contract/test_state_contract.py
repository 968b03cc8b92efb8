"""The state contract: every backend (local file, PostgreSQL, Azure Blob) keeps state and
locks the same way, against the real servers (``tests/servers``)."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncctl.errors import LockHeldError
from syncctl.state import LastRun, State, StateError
from syncctl.state.backend import StateBackend, StateConflictError, open_backend
from syncctl.state.migrate import migrate_state
from syncctl.state.store import SourceCache, render_state
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


# -- blobs -----------------------------------------------------------------------------------

OTHER_TENANT = "fabrikam.onmicrosoft.com"


def some_bytes(size: int, seed: int = 7) -> bytes:
    """Incompressible, like the compressed slice; every byte value occurs."""
    return random.Random(seed).randbytes(size)


def slice_name(data: bytes) -> str:
    return "slice-" + hashlib.sha256(data).hexdigest()


def test_blobs_round_trip_whole_between_two_runners(policies: Path, store: StateStore) -> None:
    writer, reader = backend(policies, store), backend(policies, store)
    big = some_bytes(6 * 1024 * 1024 + 13)  # several MB, not a multiple of any chunk size
    writer.save_blob(slice_name(big), big)
    writer.save_blob("empty", b"")
    writer.save_blob("a" * 100, b"\x00\r\n\xff")
    assert reader.load_blob(slice_name(big)) == big
    assert reader.load_blob("empty") == b""
    assert reader.load_blob("a" * 100) == b"\x00\r\n\xff"


def test_a_missing_blob_is_none(policies: Path, store: StateStore) -> None:
    fresh = backend(policies, store)
    assert fresh.load_blob("slice-0") is None  # nothing stored at all yet
    fresh.prune_blobs(())  # nothing to prune is no error either
    fresh.save_blob("slice-1", b"one")
    assert fresh.load_blob("slice-0") is None
    assert backend(policies, store, "wiki").load_blob("slice-1") is None  # another policy's


def test_saving_a_blob_again_replaces_it(policies: Path, store: StateStore) -> None:
    first = backend(policies, store)
    first.save_blob("quiet-plan", b"old" * 1000)
    first.save_blob("quiet-plan", b"new")
    assert first.load_blob("quiet-plan") == b"new"
    assert backend(policies, store).load_blob("quiet-plan") == b"new"


def test_prune_keeps_exactly_what_it_is_told_and_only_touches_its_own_policy(
    policies: Path, store: StateStore
) -> None:
    vault = backend(policies, store, "vault")
    wiki = backend(policies, store, "wiki")
    # The same policy name in another tenant (PostgreSQL and Blob: the same table/container).
    elsewhere = backend(policies / "fabrikam", store, "vault", tenant=OTHER_TENANT)
    runners = {"vault": vault, "wiki": wiki, "elsewhere": elsewhere}
    names = ("slice-a", "slice-b", "slice-c")
    for label, runner in runners.items():
        for name in names:
            runner.save_blob(name, f"{name} of {label}".encode())
    vault.prune_blobs({"slice-b", "slice-not-there"})
    assert {n: vault.load_blob(n) for n in names} == {
        "slice-a": None,
        "slice-b": b"slice-b of vault",
        "slice-c": None,
    }
    for label in ("wiki", "elsewhere"):
        for name in names:
            assert runners[label].load_blob(name) == f"{name} of {label}".encode()
    vault.prune_blobs(())
    assert vault.load_blob("slice-b") is None
    assert wiki.load_blob("slice-b") == b"slice-b of wiki"
    assert elsewhere.load_blob("slice-b") == b"slice-b of elsewhere"


def test_blobs_are_not_states(policies: Path, store: StateStore) -> None:
    vault = backend(policies, store)
    # A blob whose name and contents look like another policy's state document.
    vault.save_blob("wiki.state.json", render_state(a_state("wiki")).encode())
    assert vault.list_states() == []
    assert vault.load() is None and backend(policies, store, "wiki").load() is None
    vault.save(a_state())
    assert [s.policy for s in backend(policies, store).list_states()] == ["vault"]


@pytest.mark.parametrize(
    "name",
    ["", "Slice-a", "slice_a", "a/b", "..", "a..b", "../vault.state.json", ".hidden", "x" * 101,
     "slice-a.", "sl\u00efce", "slice a", "slice-a\n"],
)  # fmt: skip
def test_an_invalid_blob_name_is_a_value_error_and_writes_nothing(
    policies: Path, store: StateStore, name: str
) -> None:
    runner = backend(policies, store)
    runner.load()
    runner.save(a_state())
    with pytest.raises(ValueError, match="invalid blob name"):
        runner.save_blob(name, b"junk")
    with pytest.raises(ValueError, match="invalid blob name"):
        runner.load_blob(name)
    assert backend(policies, store).load() == a_state()
    assert [s.policy for s in runner.list_states()] == ["vault"]


def test_saving_the_state_leaves_the_blobs_alone(policies: Path, store: StateStore) -> None:
    runner = backend(policies, store)
    data = some_bytes(300_000)
    runner.save_blob("slice-old", b"a blob no state names")
    runner.save_blob(slice_name(data), data)
    cache = SourceCache(slice_name(data), key="k" * 64, full_read_at="2026-12-01T10:00:00Z")
    assert runner.load() is None
    for step in range(3):  # journal saves during an apply
        runner.save(replace(a_state(managed=(f"id-{step}",)), source_cache=cache))
    assert runner.load_blob(slice_name(data)) == data
    assert runner.load_blob("slice-old") == b"a blob no state names"  # a save never prunes
    loaded = backend(policies, store).load()
    assert loaded is not None and loaded.source_cache == cache
    assert loaded.blob_names() == (slice_name(data),)


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
