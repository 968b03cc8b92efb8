"""``syncctl watch``: when each policy runs next, and whether the loop is alive.

Pure bookkeeping on a monotonic clock, so the loop (``syncctl.cli.watch``) stays a thin
driver and this is tested without waiting. A policy runs every interval, give or take the
jitter (many tenants in one process, or many watchers, must not all hit Graph in the same
second); after failures it waits longer, doubling per failure up to an hour, so a tenant
whose secret expired is not retried every minute, while the others keep their pace.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable

Clock = Callable[[], float]

MAX_BACKOFF = 3600.0  # seconds; never less than the interval itself


class Schedule:
    """When each policy is due. A policy not seen before is due at once."""

    def __init__(
        self, every: float, jitter: float = 0.1, *, rng: random.Random | None = None
    ) -> None:
        self.every = every
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def due(self, names: Iterable[str], now: float) -> list[str]:
        """The policies to run now, in name order; forgets policies no longer given."""
        wanted = set(names)
        for gone in set(self._due) - wanted:
            del self._due[gone]
            self._failures.pop(gone, None)
        return sorted(n for n in wanted if self._due.get(n, now) <= now)

    def ran(self, name: str, *, succeeded: bool, now: float) -> float:
        """Record a run that ended at ``now``; returns the delay until it is due again."""
        failures = 0 if succeeded else self._failures.get(name, 0) + 1
        self._failures[name] = failures
        delay = self.delay(failures)
        self._due[name] = now + delay
        return delay

    def delay(self, failures: int) -> float:
        """The interval, jittered; after n failures in a row, 2**(n-1) intervals, capped."""
        base = self.every * float(2 ** max(0, failures - 1))
        base = min(base, max(self.every, MAX_BACKOFF))
        return base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    def failures(self, name: str) -> int:
        return self._failures.get(name, 0)

    def next_due(self, now: float) -> float:
        """When the next policy is due (``now + every`` when none is known yet)."""
        return min(self._due.values(), default=now + self.every)


class Health:
    """``/healthz``: the loop promises when it will next report (a cycle's deadline, or the
    end of its wait, plus a grace); it is healthy while that promise holds. A cycle stuck
    beyond its ``--timeout`` turns it unhealthy, so a liveness probe restarts the process."""

    def __init__(self, grace: float, clock: Clock = time.monotonic) -> None:
        self.grace = grace
        self._clock = clock
        self._until = clock() + grace
        self._lock = threading.Lock()

    def expect_by(self, when: float) -> None:
        with self._lock:
            self._until = when + self.grace

    def healthy(self) -> bool:
        with self._lock:
            return self._clock() <= self._until

    def overdue(self) -> float:
        """Seconds past the promise (0 when healthy)."""
        with self._lock:
            return max(0.0, self._clock() - self._until)
