"""The applier: phase order, batching, concurrency, failure handling, write-ahead ownership.

The target is the real SQLite directory wrapped in a recorder that notes each batch (and, for
the concurrency test, claims parallel_safe): the order and the journal are what is tested.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncctl.apply import PHASES, StateJournal, apply_changes, phase_of
from syncctl.errors import TargetError
from syncctl.expressions import Deferred
from syncctl.model import TargetSnapshot
from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, Reason
from syncctl.state import State, load_state, save_state
from syncctl.targets.base import Capabilities, Outcome, OutcomeStatus
from syncctl.targets.sqlite import SqliteDirectory
from tests.contract.policy_factory import make_policy

OWNER = "applier"
T0 = datetime(2026, 11, 22, 3, tzinfo=UTC)


def _saver(path: Path) -> Callable[[State], None]:
    return lambda state: save_state(path, state)


class Recorder:
    def __init__(self, inner: SqliteDirectory, *, max_batch: int = 100, parallel: bool = False):
        self.inner = inner
        self.max_batch = max_batch
        self.parallel = parallel
        self.batches: list[list[Change]] = []
        self.active = 0
        self.peak = 0
        self.fail_after: int | None = None
        self.on_apply: list[object] = []
        self._lock = threading.Lock()

    def capabilities(self) -> Capabilities:
        return Capabilities(max_batch=self.max_batch, parallel_safe=self.parallel)

    def read(self, owner: str, known_ids: Collection[str]) -> TargetSnapshot:
        return self.inner.read(owner, known_ids)

    def apply(self, changes: Sequence[Change], owner: str) -> list[Outcome]:
        with self._lock:
            if self.fail_after is not None and len(self.batches) >= self.fail_after:
                raise TargetError("sqlite: disk I/O error")
            self.batches.append(list(changes))
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.parallel:
                time.sleep(0.05)  # let the other workers overlap
            return self.inner.apply(changes, owner)
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    inner = SqliteDirectory(make_policy(tmp_path, OWNER))
    try:
        yield Recorder(inner)
    finally:
        inner.close()


def user(
    n: int,
    action: Action = Action.CREATE,
    *,
    attributes: tuple[AttributeChange, ...] | None = None,
    target_id: str | None = None,
) -> Change:
    name = f"u{n}@contoso.com"
    return Change(
        f"user/{name}",
        ChangeKind.USER,
        action,
        Reason.ENTERED_SCOPE,
        source_id=f"u{n}",
        target_id=target_id,
        attributes=(AttributeChange("userName", None, name),) if attributes is None else attributes,
    )


def group(n: int, action: Action = Action.CREATE) -> Change:
    name = f"g{n}"
    return Change(
        f"group/{name}",
        ChangeKind.GROUP,
        action,
        Reason.ENTERED_SCOPE,
        source_id=name,
        attributes=(AttributeChange("displayName", None, name),),
    )


def member(g: int, u: int, action: Action = Action.ADD) -> Change:
    return Change(
        f"membership/g{g}/u{u}@contoso.com",
        ChangeKind.MEMBERSHIP,
        action,
        Reason.MEMBER_IN_SCOPE,
        group=f"g{g}",
        user=f"u{u}",
    )


def run(
    recorder: Recorder, changes: Sequence[Change], tmp_path: Path, parallelism: int = 4
) -> tuple[list[tuple[Change, Outcome]], StateJournal]:
    journal = StateJournal(_saver(tmp_path / "state.json"), State(OWNER))
    report = apply_changes(
        changes,
        recorder,
        owner=OWNER,
        journal=journal,
        clock=lambda: T0,
        parallelism=parallelism,
    )
    return [(r.change, r.outcome) for r in report.results], journal


def test_phases_run_in_the_documented_order(recorder: Recorder, tmp_path: Path) -> None:
    setup = [group(1), group(2), user(1), user(2), user(3), member(2, 3)]
    run(recorder, setup, tmp_path)
    recorder.batches.clear()
    changes = [
        group(2, Action.DELETE),
        user(1, Action.DELETE),
        user(2, Action.DISABLE),
        member(1, 1),
        member(2, 3, Action.REMOVE),
        user(4),
        group(3),
    ]
    random.Random(7).shuffle(changes)
    results, _ = run(recorder, changes, tmp_path)
    applied = [c.address for batch in recorder.batches for c in batch]
    assert applied == [
        "group/g3",
        "user/u4@contoso.com",
        "membership/g2/u3@contoso.com",
        "membership/g1/u1@contoso.com",
        "user/u2@contoso.com",
        "user/u1@contoso.com",
        "group/g2",
    ]
    assert all(o.status is OutcomeStatus.APPLIED for _, o in results), results
    assert [phase_of(c) for c in sorted(changes, key=phase_of)] == sorted(map(phase_of, changes))
    assert len(PHASES) == 8  # the last: Entra user updates (writeback)


def test_batches_never_exceed_max_batch(recorder: Recorder, tmp_path: Path) -> None:
    recorder.max_batch = 3
    run(recorder, [user(n) for n in range(10)], tmp_path)
    assert [len(b) for b in recorder.batches] == [3, 3, 3, 1]


def test_parallel_only_when_the_target_allows(recorder: Recorder, tmp_path: Path) -> None:
    recorder.max_batch = 2
    run(recorder, [user(n) for n in range(8)], tmp_path, parallelism=4)
    assert recorder.peak == 1  # SQLite: serial
    recorder.parallel = True
    recorder.peak = 0
    run(recorder, [user(n) for n in range(8, 16)], tmp_path, parallelism=4)
    assert 2 <= recorder.peak <= 4
    recorder.peak = 0
    run(recorder, [user(n) for n in range(16, 24)], tmp_path, parallelism=1)
    assert recorder.peak == 1


def test_failures_are_reported_and_the_run_goes_on(recorder: Recorder, tmp_path: Path) -> None:
    results, _ = run(recorder, [user(1), member(9, 1), user(2)], tmp_path)
    by_address = {c.address: o for c, o in results}
    assert by_address["membership/g9/u1@contoso.com"].status is OutcomeStatus.FAILED
    assert by_address["user/u2@contoso.com"].status is OutcomeStatus.APPLIED


def test_a_failing_target_stops_the_run_and_reports_the_rest(
    recorder: Recorder, tmp_path: Path
) -> None:
    recorder.max_batch = 1
    recorder.fail_after = 2
    journal = StateJournal(_saver(tmp_path / "state.json"), State(OWNER))
    report = apply_changes(
        [group(1), user(1), user(2), member(1, 1), user(3, Action.DISABLE)],
        recorder,
        owner=OWNER,
        journal=journal,
        clock=lambda: T0,
    )
    assert report.aborted == "sqlite: disk I/O error"
    statuses = [(r.change.address, r.outcome.status) for r in report.results]
    assert statuses[:2] == [
        ("group/g1", OutcomeStatus.APPLIED),
        ("user/u1@contoso.com", OutcomeStatus.APPLIED),
    ]
    assert all(s is OutcomeStatus.FAILED for _, s in statuses[2:])
    assert len(statuses) == 5
    assert all("not attempted" in (r.outcome.message or "") for r in report.failed)


def test_ownership_is_written_before_the_create(recorder: Recorder, tmp_path: Path) -> None:
    state_path = tmp_path / "state.json"
    seen: list[frozenset[str]] = []
    original = recorder.apply

    def spy(changes: Sequence[Change], owner: str) -> list[Outcome]:
        seen.append(load_state(state_path, OWNER).managed)
        return original(changes, owner)

    recorder.apply = spy  # type: ignore[method-assign]
    run(recorder, [user(1), user(2)], tmp_path)
    assert seen[0] == {"u1", "u2"}


def test_journal_tracks_disables_enables_and_deletes(recorder: Recorder, tmp_path: Path) -> None:
    _, journal = run(recorder, [user(1), user(2)], tmp_path)
    state_path = tmp_path / "state.json"
    journal = StateJournal(_saver(state_path), journal.state)
    snapshot = recorder.read(OWNER, ())
    versions = {u.external_id: u.target_id for u in snapshot.users}
    apply_changes(
        [
            user(1, Action.DISABLE, target_id=versions["u1"], attributes=()),
            user(2, Action.DELETE, target_id=versions["u2"], attributes=()),
        ],
        recorder,
        owner=OWNER,
        journal=journal,
        clock=lambda: T0,
    )
    state = load_state(state_path, OWNER)
    assert state.managed == {"u1"}
    assert state.disabled_at == {"u1": T0}
    apply_changes(
        [user(1, Action.ENABLE, target_id=versions["u1"], attributes=())],
        recorder,
        owner=OWNER,
        journal=journal,
        clock=lambda: T0,
    )
    assert load_state(state_path, OWNER).disabled_at == {}


def test_deferred_values_are_resolved_before_the_target_sees_them(
    recorder: Recorder, tmp_path: Path
) -> None:
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return "s3cr3t-generated"

    change = user(
        1,
        attributes=(
            AttributeChange("userName", None, "u1@contoso.com"),
            AttributeChange("nickName", None, Deferred("RandomString(8)", "u1", compute)),
        ),
    )
    results, _ = run(recorder, [change], tmp_path)
    assert results[0][1].status is OutcomeStatus.APPLIED
    sent = recorder.batches[0][0].attributes[1].after
    assert sent == "s3cr3t-generated"
    assert calls == [1]
    (stored,) = recorder.read(OWNER, ()).users
    assert stored.attributes.get("nickName") is None  # not a mapped path of this policy
