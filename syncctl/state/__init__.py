"""State store (managed ids, disable timestamps, last run, delta links) and per-policy lock."""

from __future__ import annotations

from syncctl.state.lock import (
    DEFAULT_TTL,
    Holder,
    LockInfo,
    PolicyLock,
    acquire,
    force_unlock,
    holder_status,
    lock_path_for,
    read_lock,
)
from syncctl.state.store import LastRun, State, StateError, load_state, save_state, write_atomic

__all__ = [
    "DEFAULT_TTL",
    "Holder",
    "LastRun",
    "LockInfo",
    "PolicyLock",
    "State",
    "StateError",
    "acquire",
    "force_unlock",
    "holder_status",
    "load_state",
    "lock_path_for",
    "read_lock",
    "save_state",
    "write_atomic",
]
