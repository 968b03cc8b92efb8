"""Throttling as Microsoft Graph's identity-and-access service does it: a budget of resource
units (RU) per application+tenant over a sliding 10-second window (throttling-limits.md).

Base costs: ``GET users`` 2, ``GET groups/{id}/members`` 3, ``GET groups/{id}/transitiveMembers``
5, ``POST directoryObjects/getByIds`` 5; any other GET 1; writes 1. Modifiers: ``$select`` -1,
``$expand`` +1, ``$top`` below 20 -1; never below 1.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_COSTS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("GET", re.compile(r"^/v1\.0/groups/[^/]+/transitiveMembers(/.*)?$", re.I), 5),
    ("GET", re.compile(r"^/v1\.0/groups/[^/]+/members(/.*)?$", re.I), 3),
    ("POST", re.compile(r"^/v1\.0/directoryObjects/getByIds$", re.I), 5),
    ("GET", re.compile(r"^/v1\.0/users(/[^/]+)?$", re.I), 2),
)


def resource_units(method: str, path: str, query: Mapping[str, str]) -> int:
    """What Graph charges for one request (delta is not listed, so it costs the base 1)."""
    cost = 1
    for cost_method, pattern, units in _COSTS:
        if method == cost_method and pattern.match(path) and not path.endswith("/delta"):
            cost = units
            break
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    top = query.get("$top")
    if top is not None and top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    units: int
    retry_after: float  # seconds, when not allowed (fractional: see format_retry_after)
    usage: float  # fraction of the budget in use after this request


class ResourceUnitBudget:
    """A sliding-window budget; ``limit`` None means unlimited."""

    def __init__(
        self,
        limit: int | None = None,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self._total = 0
        self._lock = threading.Lock()

    def configure(self, limit: int | None, window: float = 10.0) -> None:
        with self._lock:
            self.limit, self.window = limit, window
            self._spent.clear()
            self._total = 0

    def charge(self, units: int) -> Verdict:
        with self._lock:
            if self.limit is None:
                return Verdict(True, units, 0, 0.0)
            now = self._clock()
            while self._spent and self._spent[0][0] <= now - self.window:
                self._total -= self._spent.popleft()[1]
            if self._total + units > self.limit:
                # wait until enough of the window's spending has aged out
                needed = self._total + units - self.limit
                freed = 0
                wait = self.window
                for moment, spent in self._spent:
                    freed += spent
                    if freed >= needed:
                        wait = moment + self.window - now
                        break
                # the exact moment enough RU age out, to the millisecond, as Graph's
                # fractional Retry-After values suggest; never 0 (that invites a hot loop)
                retry_after = max(0.001, round(wait, 3))
                return Verdict(False, units, retry_after, self._total / self.limit)
            self._spent.append((now, units))
            self._total += units
            return Verdict(True, units, 0, self._total / self.limit)


def format_retry_after(seconds: float) -> str:
    """Retry-After as Graph's directory service sends it: delta-seconds that may carry a
    fraction ("2.128"; RFC 9110 allows only integers, so clients must parse a decimal)."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text or "0"
