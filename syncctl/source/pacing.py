"""Slowing down before Graph throttles: ``x-ms-throttle-limit-percentage``.

Graph sends x-ms-throttle-limit-percentage only once the app has used more than 0.8 of its
identity-and-access budget (resource units per app+tenant over a sliding 10 s window), with
values from 0.8 to 1.8 (a fraction, despite the name): https://learn.microsoft.com/graph/
throttling-limits#identity-and-access-service-limits ("Regular responses requests"). The
docs leave it to the caller to "set up an alert and take action". syncctl acts: while the
header is present, requests from all threads are spaced (usage - 0.8) seconds apart (0.2 s at
the limit, 1 s at 1.8), which keeps a run well under even the smallest tenant's budget while
the window drains, instead of running into 429s whose Retry-After stalls every worker.
Its absence on the next answer lifts the spacing. The pause is never longer than the run's
deadline leaves: pacing is a courtesy, a 429 still gets its Retry-After.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from syncctl import deadline

THROTTLE_WARNING_HEADER = "x-ms-throttle-limit-percentage"
THROTTLE_WARNING_FROM = 0.8
THROTTLE_WARNING_TO = 1.8


class Pacer:
    """Spaces requests (from all threads) while Graph says the app nears its limit."""

    def __init__(self, *, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._spacing = 0.0  # seconds between requests while Graph warns of its throttle limit
        self._next_slot = 0.0  # clock() before which no further request starts while spacing
        self.usage: float | None = None  # the last x-ms-throttle-limit-percentage
        self.paced_seconds = 0.0  # time spent spacing requests out

    def observe(self, usage: float | None) -> None:
        """What the last answer said (None: no warning, so no spacing)."""
        with self._lock:
            self.usage = usage
            self._spacing = max(0.0, usage - THROTTLE_WARNING_FROM) if usage is not None else 0.0

    def wait_turn(self) -> None:
        """Before a request: wait for its slot, never past the run's deadline."""
        with self._lock:
            if self._spacing <= 0:
                return
            now = self._clock()
            start = max(now, self._next_slot)
            self._next_slot = start + self._spacing
            wait = start - now
            left = deadline.remaining()
            if left is not None:
                wait = min(wait, max(0.0, left))
            self.paced_seconds += wait
        if wait > 0:
            self._sleep(wait)


def throttle_usage(value: str | None) -> float | None:
    """x-ms-throttle-limit-percentage as a fraction of the limit (None: absent or unreadable;
    an out-of-range value is clamped to the documented 0.8-1.8)."""
    if value is None:
        return None
    try:
        usage = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(usage):
        return None
    return min(max(usage, THROTTLE_WARNING_FROM), THROTTLE_WARNING_TO)
