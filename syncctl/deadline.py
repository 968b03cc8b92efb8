"""The run's overall deadline (``--timeout``) and the cap on retry waits of one request.

Retry loops (Graph, sign-in, SCIM) ask this module how long they may still wait, so a server
that throttles forever or never answers ends the run with a clear error instead of hours of
silence. The deadline is per thread of work: concurrent policies each run under the same
wall-clock deadline, set once by the CLI.
"""

from __future__ import annotations

import threading
import time

from syncctl.errors import SyncctlError

DEFAULT_TIMEOUT = 30 * 60.0
MAX_RETRY_WAIT_PER_REQUEST = 120.0

_lock = threading.Lock()
_expires_at: float | None = None
_timeout: float | None = None


class DeadlineExceeded(SyncctlError):
    """The run's --timeout passed."""


def set_deadline(seconds: float | None) -> None:
    """Start the run's clock: every request must be done within ``seconds`` from now."""
    global _expires_at, _timeout  # noqa: PLW0603 - one deadline per process, set by the CLI
    with _lock:
        _timeout = seconds
        _expires_at = None if seconds is None else time.monotonic() + seconds


def remaining() -> float | None:
    """Seconds left before the deadline, or None when there is none."""
    if _expires_at is None:
        return None
    return _expires_at - time.monotonic()


def check(what: str) -> None:
    """Raise DeadlineExceeded (naming ``what``) when the deadline has passed."""
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineExceeded(
            f"{what}: the run's deadline (--timeout {_format(_timeout)}) passed; "
            "raise --timeout or check why the service is slow"
        )


def bounded_wait(what: str, wanted: float, waited_so_far: float) -> float:
    """How long a retry loop may sleep now: ``wanted`` capped by the per-request retry budget
    and the run's deadline. Raises when neither leaves any time, so callers never sleep past
    them."""
    budget = MAX_RETRY_WAIT_PER_REQUEST - waited_so_far
    left = remaining()
    if left is not None:
        budget = min(budget, left)
    if budget <= 0:
        check(what)
        raise RetryBudgetExceeded(
            f"{what}: still failing after {waited_so_far:.0f}s of retries "
            f"(at most {MAX_RETRY_WAIT_PER_REQUEST:.0f}s of waiting per request)"
        )
    return max(0.0, min(wanted, budget))


def request_timeout(default: float) -> float:
    """A per-request network timeout that never outlives the run's deadline."""
    left = remaining()
    if left is None:
        return default
    return max(0.001, min(default, left))


class RetryBudgetExceeded(SyncctlError):
    """One request kept failing for longer than its retry budget."""


def _format(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:g}s"
