"""The batch runner: policies run concurrently, isolated from each other's failures, and
their results come back in a stable order whatever finished first."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from syncctl.batch import open_batch
from syncctl.engine import PolicyRun
from syncctl.errors import GraphError, LockHeldError
from syncctl.outcomes import Outcome, exit_code
from tests.unit.source.policies import make_policy


def runs(*names: str) -> list[PolicyRun]:
    return [
        PolicyRun(dataclasses.replace(make_policy(), name=name), operation="plan") for name in names
    ]


def test_up_to_concurrency_policies_run_at_once() -> None:
    # Four policies must be inside the step together to pass the barrier: run one after
    # another, the first would wait alone and the barrier would break.
    barrier = threading.Barrier(4, timeout=60)

    def meet(run: PolicyRun) -> None:
        barrier.wait()
        run.finish(Outcome.NO_CHANGES, None)

    with open_batch(runs("d", "b", "a", "c"), concurrency=4) as batch:
        batch.step(meet)
    results = batch.results()
    assert [r.policy for r in results] == ["a", "b", "c", "d"]
    assert {r.outcome for r in results} == {Outcome.NO_CHANGES}


def test_concurrency_bounds_how_many_run_at_once() -> None:
    inside = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def count(run: PolicyRun) -> None:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
            if inside == 2:
                release.set()
        release.wait(60)
        with lock:
            inside -= 1
        run.finish(Outcome.NO_CHANGES, None)

    with open_batch(runs(*"abcdef"), concurrency=2) as batch:
        batch.step(count)
    assert most == 2
    assert len(batch.results()) == 6


def test_one_failure_does_not_stop_the_others() -> None:
    def work(run: PolicyRun) -> None:
        if run.name == "beta":
            raise GraphError("cannot reach Graph", request="GET /v1.0/groups")
        if run.name == "delta":
            raise LockHeldError("locked by ci@runner-7")
        if run.name == "omega":
            raise KeyError("a bug")
        run.finish(Outcome.CHANGES_PENDING, None)

    with open_batch(runs("alpha", "beta", "delta", "gamma", "omega"), concurrency=2) as batch:
        batch.step(work)
    results = {r.policy: r for r in batch.results()}
    assert results["alpha"].outcome is Outcome.CHANGES_PENDING
    assert results["gamma"].outcome is Outcome.CHANGES_PENDING
    assert results["beta"].outcome is Outcome.FAILED
    assert results["beta"].error == "GET /v1.0/groups: cannot reach Graph"
    assert results["delta"].outcome is Outcome.REFUSED
    assert results["omega"].outcome is Outcome.FAILED
    assert "this is a bug" in (results["omega"].error or "")
    assert "KeyError" in batch.traces["omega"]
    assert exit_code(list(results.values())) == 1  # an error anywhere wins over a refusal


def test_a_later_step_skips_runs_that_already_ended() -> None:
    seen: list[str] = []

    def first(run: PolicyRun) -> None:
        if run.name == "a":
            raise GraphError("down")

    def second(run: PolicyRun) -> None:
        seen.append(run.name)
        run.finish(Outcome.SUCCESS, None)

    with open_batch(runs("a", "b"), concurrency=1) as batch:
        batch.step(first)
        batch.step(second)
    assert seen == ["b"]
    assert [r.outcome for r in batch.results()] == [Outcome.FAILED, Outcome.SUCCESS]


@pytest.mark.parametrize(
    ("outcomes", "detailed", "code"),
    [
        ([Outcome.NO_CHANGES, Outcome.SUCCESS], False, 0),
        ([Outcome.REFUSED, Outcome.SUCCESS], False, 3),
        ([Outcome.REFUSED, Outcome.PARTIAL], False, 1),
        ([Outcome.FAILED, Outcome.NO_CHANGES], True, 1),
    ],
)
def test_the_exit_code_is_the_worst_outcome(
    outcomes: list[Outcome], detailed: bool, code: int
) -> None:
    from syncctl.outcomes import PolicyResult

    results = [PolicyResult(f"p{n}", o) for n, o in enumerate(outcomes)]
    assert exit_code(results, detailed=detailed) == code
