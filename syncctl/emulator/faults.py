r"""Failure knobs: rules that make chosen requests fail or answer wrongly, and latency.

A rule matches on method and a regex searched in the request path (query string included,
so ``r"users\?.*skiptoken"`` can target follow-up pages). The first matching rule with
uses left fires.

Besides failing, a rule can make a *successful* answer wrong (``rewrite``: the JSON body passes
through a function, e.g. ``drop_items(10)`` or ``empty_value``), or replace it with bytes that
are not JSON (``body``): the partial and malformed answers a client must never trust.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Rewrite = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to one request. ``status`` None with no other effect means pure delay."""

    status: int | None = None
    reset: bool = False  # drop the connection without an answer
    truncate: bool = False  # announce the full Content-Length, send half the body, close
    delay: float = 0.0  # seconds to wait before answering
    retry_after: int | None = None  # Retry-After header on a status answer
    message: str | None = None
    rewrite: Rewrite | None = None  # a successful answer's JSON body, changed by this
    body: bytes | None = None  # answer ``status`` (200 when None) with these bytes instead


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
        rewrite: Rewrite | None = None,
        body: bytes | None = None,
    ) -> FaultRule:
        """Make the next ``times`` matching requests fail (None: all of them).

        ``method=None`` matches any method. ``reset`` or ``truncate`` take precedence over
        ``status``; pass ``status=None`` with ``delay`` for a slow but successful answer, or
        with ``rewrite`` for a successful answer whose JSON body is changed (status rules and
        rewrites apply to ``$batch`` items too). ``body`` answers with those bytes (not JSON,
        ``Content-Type: text/html``) and ``status``, 200 when ``status`` is None.
        """
        fault = Fault(status, reset, truncate, delay, retry_after, message, rewrite, body)
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


def drop_items(count: int) -> Rewrite:
    """A rewrite that loses the last ``count`` items of a page (``@odata.count`` and
    ``@odata.nextLink`` stay as they were): a truncated page that still looks whole."""

    def rewrite(body: Any) -> Any:
        if isinstance(body, dict) and isinstance(body.get("value"), list):
            return {**body, "value": body["value"][: max(0, len(body["value"]) - count)]}
        return body

    return rewrite


def empty_value(body: Any) -> Any:
    """A rewrite that empties ``value`` (``{"value": []}`` with the answer's other
    annotations): a short answer that is not an error."""
    return {**body, "value": []} if isinstance(body, dict) else body
