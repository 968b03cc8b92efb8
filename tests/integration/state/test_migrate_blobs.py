"""``state migrate`` between two real backends copies the blobs the state names, before the
state, and skips those the source lacks."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from syncctl.state import LastRun, State, StateError
from syncctl.state.backend import StateBackend, open_backend
from syncctl.state.migrate import migrate_state
from syncctl.state.store import SourceCache
from tests.contract.state_store import StateStore, policy_for

TENANT = "contoso.onmicrosoft.com"
TTL = timedelta(hours=6)
LOCAL = StateStore(kind="local", section={"backend": "local"})
DATA = random.Random(11).randbytes(2 * 1024 * 1024 + 1)
SLICE = "slice-" + hashlib.sha256(DATA).hexdigest()


def a_state(finished: str, cache: SourceCache | None) -> State:
    run = LastRun("apply", finished, finished, "success", {"c": 1})
    return State("vault", frozenset({"id-1"}), last_run=run, tenant=TENANT, source_cache=cache)


def stores(request: pytest.FixtureRequest, *kinds: str) -> list[StateStore]:
    return [LOCAL if k == "local" else request.getfixturevalue(f"{k}_state_store") for k in kinds]


@pytest.fixture
def opened() -> Iterator[list[StateBackend]]:
    made: list[StateBackend] = []
    yield made
    for backend in made:
        backend.close()


@pytest.mark.parametrize(
    ("source_kind", "destination_kind"),
    [("local", "postgres"), ("postgres", "azure_blob"), ("azure_blob", "local")],
)
def test_migrate_copies_the_named_blobs_and_skips_those_the_source_lacks(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    opened: list[StateBackend],
    source_kind: str,
    destination_kind: str,
) -> None:
    source_store, destination_store = stores(request, source_kind, destination_kind)
    with ExitStack() as env:
        env.enter_context(source_store.environment())
        env.enter_context(destination_store.environment())

        def side(where: str, store: StateStore) -> StateBackend:
            backend = open_backend(policy_for(tmp_path / where, "vault", store))
            opened.append(backend)
            return backend

        source, destination = side("before", source_store), side("after", destination_store)
        # The source's cache names a slice it has and a quiet plan it lost.
        cache = SourceCache(SLICE, "k" * 64, "2026-12-01T09:00:00Z", "q" * 64, "plan-lost")
        state = a_state("2026-12-01T10:00:00Z", cache)
        source.save_blob(SLICE, DATA)
        source.save_blob("slice-unnamed", b"an orphan of the source")
        assert source.load() is None
        source.save(state)
        # The destination holds an older state, with its own slice.
        old = a_state("2026-11-01T10:00:00Z", replace(cache, blob="slice-old", quiet_blob=None))
        destination.save_blob("slice-old", b"the destination's old slice")
        assert destination.load() is None
        destination.save(old)

        done = migrate_state(source, destination, policy="vault", ttl=TTL)

        assert (done.already_there, done.blobs_copied, done.blobs_missing) == (
            False,
            (SLICE,),
            ("plan-lost",),
        )
        after = side("after", destination_store)
        assert after.load() == state
        assert after.load_blob(SLICE) == DATA
        assert after.load_blob("plan-lost") is None
        assert after.load_blob("slice-unnamed") is None  # only what the state names
        assert after.load_blob("slice-old") is None  # nothing names it any more
        assert after.read_lock() is None and source.read_lock() is None
        assert source.load_blob(SLICE) == DATA and source.load() == state  # left as it was

        # A destination that holds the state but lost its slice gets the slice again.
        after.prune_blobs(())
        again = migrate_state(source, after, policy="vault", ttl=TTL)
        assert again.already_there and again.blobs_copied == (SLICE,)
        assert side("after", destination_store).load_blob(SLICE) == DATA


def test_a_blob_that_cannot_be_copied_leaves_the_destination_without_the_state(
    request: pytest.FixtureRequest, tmp_path: Path, opened: list[StateBackend]
) -> None:
    (postgres,) = stores(request, "postgres")
    with postgres.environment():
        source = open_backend(policy_for(tmp_path / "before", "vault", postgres))
        destination = open_backend(policy_for(tmp_path / "after", "vault", LOCAL))
        opened.extend((source, destination))
        source.save_blob(SLICE, DATA)
        source.load()
        source.save(a_state("2026-12-01T10:00:00Z", SourceCache(SLICE, "k", "2026-12-01")))
        # Where the destination's blobs go there is a file: its save_blob fails.
        (tmp_path / "after" / ".syncctl").mkdir(parents=True)
        (tmp_path / "after" / ".syncctl" / "vault.blobs").write_text("in the way")

        with pytest.raises(StateError, match="cannot write blob"):
            migrate_state(source, destination, policy="vault", ttl=TTL)

        assert destination.load() is None  # the state is written only after its blobs
        assert destination.read_lock() is None and source.read_lock() is None
