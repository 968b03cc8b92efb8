r"""Failure knobs: rules that make chosen requests fail, and injected latency.

A rule matches on method and a regex searched in the request path (query string included,
so ``r"users\?.*skiptoken"`` can target follow-up pages). The first matching rule with
uses left fires.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to one request. ``status`` None with no other effect means pure delay."""

    status: int | None = None
    reset: bool = False  # drop the connection without an answer
    truncate: bool = False  # announce the full Content-Length, send half the body, close
    delay: float = 0.0  # seconds to wait before answering
    retry_after: int | None = None  # Retry-After header on a status answer
    message: str | None = None


class FaultRule:
    def __init__(self, path: str, method: str | None, fault: Fault, times: int | None) -> None:
        self.pattern = re.compile(path)
        self.method = method.upper() if method else None
        self.fault = fault
        self.remaining = times  # None: every matching request
        self.fired = 0


class Faults:
    """The emulator's fault table (``emu.faults``)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self.latency = 0.0  # seconds added to every request

    def add(
        self,
        path: str = ".*",
        *,
        method: str | None = "GET",
        status: int | None = 503,
        reset: bool = False,
        truncate: bool = False,
        delay: float = 0.0,
        times: int | None = 1,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> FaultRule:
        """Make the next ``times`` matching requests fail (None: all of them).

        ``method=None`` matches any method. ``reset`` or ``truncate`` take precedence over
        ``status``; pass ``status=None`` with ``delay`` for a slow but successful answer.
        """
        fault = Fault(status, reset, truncate, delay, retry_after, message)
        rule = FaultRule(path, method, fault, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.latency = 0.0

    def take(self, method: str, target: str) -> Fault | None:
        """The fault for this request, consuming one use of its rule."""
        with self._lock:
            for rule in self._rules:
                if rule.method is not None and rule.method != method.upper():
                    continue
                if rule.remaining is not None and rule.remaining <= 0:
                    continue
                if not rule.pattern.search(target):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.fired += 1
                return rule.fault
        return None
