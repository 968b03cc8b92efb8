"""When ``watch`` runs each policy, and when it calls itself stuck: on a fake clock."""

from __future__ import annotations

import random

import pytest

from syncctl.metrics_server import parse_listen
from syncctl.watch import MAX_BACKOFF, Health, Schedule


def test_new_policies_are_due_at_once_then_every_interval_with_jitter() -> None:
    schedule = Schedule(60.0, 0.1, rng=random.Random(1))
    assert schedule.due(["b", "a"], now=0.0) == ["a", "b"]
    delays = [schedule.ran("a", succeeded=True, now=0.0) for _ in range(200)]
    assert all(54.0 <= d <= 66.0 for d in delays)
    assert max(delays) - min(delays) > 6.0  # really spread, not a constant
    schedule.ran("b", succeeded=True, now=0.0)
    assert schedule.due(["a", "b"], now=50.0) == []
    assert schedule.due(["a", "b"], now=70.0) == ["a", "b"]


def test_failures_back_off_doubling_up_to_an_hour_and_reset_on_success() -> None:
    schedule = Schedule(60.0, 0.0)
    delays = [schedule.ran("a", succeeded=False, now=0.0) for _ in range(8)]
    assert delays == [60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, MAX_BACKOFF, MAX_BACKOFF]
    assert schedule.failures("a") == 8
    assert schedule.ran("a", succeeded=True, now=0.0) == 60.0
    assert schedule.failures("a") == 0


def test_one_failing_policy_does_not_slow_the_others() -> None:
    schedule = Schedule(60.0, 0.0)
    schedule.due(["bad", "good"], now=0.0)
    for now in (0.0, 60.0, 120.0):
        schedule.ran("good", succeeded=True, now=now)
    for _ in range(3):
        schedule.ran("bad", succeeded=False, now=0.0)  # due again at 240
    assert schedule.due(["bad", "good"], now=180.0) == ["good"]
    assert schedule.next_due(180.0) == 180.0


def test_an_interval_longer_than_the_cap_is_kept() -> None:
    schedule = Schedule(2 * MAX_BACKOFF, 0.0)
    assert schedule.delay(5) == 2 * MAX_BACKOFF


def test_policies_no_longer_given_are_forgotten() -> None:
    schedule = Schedule(60.0, 0.0)
    schedule.due(["a", "b"], now=0.0)
    schedule.ran("a", succeeded=False, now=0.0)
    schedule.ran("b", succeeded=True, now=0.0)
    assert schedule.due(["b"], now=0.0) == []
    assert schedule.failures("a") == 0  # "a" comes back as a new policy
    assert schedule.due(["a", "b"], now=0.0) == ["a"]


def test_health_holds_while_the_loop_keeps_its_promise() -> None:
    now = [100.0]
    health = Health(grace=60.0, clock=lambda: now[0])
    health.expect_by(130.0)  # waiting until 130
    now[0] = 189.0
    assert health.healthy()
    now[0] = 191.0
    assert not health.healthy()
    assert health.overdue() == pytest.approx(1.0)
    health.expect_by(191.0 + 1800.0)  # a cycle started with a 30-minute deadline
    assert health.healthy()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:9185", ("127.0.0.1", 9185)),
        (":9185", ("0.0.0.0", 9185)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_listen_addresses(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(text) == parsed


@pytest.mark.parametrize("text", ["9185", "host:", "host:http", "host:70000", ""])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)
