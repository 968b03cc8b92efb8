"""Where a policy's state and lock live: one Protocol, three backends.

Every backend stores the same JSON document (``State.to_dict``) and offers the same lock
semantics, so the engine never knows which one it talks to:

- ``load`` returns None when the backend holds no state for the policy (a first run, or a
  lost state: the engine tells them apart by looking at the target), never an empty state
  because of an error;
- ``save`` writes the whole document and detects a concurrent writer (another process saved
  since this one loaded or last saved): ``StateConflictError``, never a silent overwrite;
- ``lock`` takes the policy's exclusive lock or raises ``LockHeldError`` naming the holder;
  the lock frees itself when its holder dies (file: pid check; PostgreSQL: the session ends;
  Blob: the lease expires), and ``force_unlock`` removes it by id for everything else.

A backend object belongs to one policy and one run; it may be used from several threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from syncctl.errors import SyncctlError
from syncctl.state.lock import LockInfo
from syncctl.state.store import State, StateError

if TYPE_CHECKING:
    from syncctl.policy.model import Policy


class StateConflictError(StateError):
    """Someone else wrote the state since this run read it: nothing was overwritten."""


class HeldLock(Protocol):
    """A lock this run holds."""

    @property
    def info(self) -> LockInfo: ...

    def check(self) -> None:
        """Raise StateError when the lock is no longer ours (a lease that could not be
        renewed, a database session that ended): the run must not write on."""

    def release(self) -> None:
        """Give the lock up (idempotent); never removes a lock someone else took since."""


class StateBackend(Protocol):
    """The state and lock of one policy (of one tenant) in one store."""

    @property
    def kind(self) -> str:
        """``local``, ``postgres`` or ``azure_blob``."""

    @property
    def location(self) -> str:
        """Where the state lives, for messages: a path, a table and key, a blob URL. Never
        a secret (no password, no account key, no SAS)."""

    def load(self) -> State | None: ...

    def save(self, state: State) -> None: ...

    def lock(self, *, operation: str, timeout: float, ttl: timedelta) -> HeldLock: ...

    def read_lock(self) -> LockInfo | None:
        """The current holder, or None when unlocked."""

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove the lock if (still) its id is ``lock_id``; StateError otherwise."""

    def list_states(self) -> Sequence[State]:
        """Every policy's state of this tenant in this store (this one's included), for
        ``state list`` and for telling which target objects other policies claim."""

    def close(self) -> None: ...


def open_backend(policy: Policy) -> StateBackend:
    """The backend the policy's ``state`` section names (raises StateError / SecretError
    with a one-line reason naming the policy and the backend)."""
    from syncctl.policy.model import AzureBlobState, PostgresState

    config = policy.state.backend
    if config is None:
        from syncctl.state.local import LocalBackend

        return LocalBackend(policy.state.path, policy=policy.name, tenant=policy.tenant.id)
    if isinstance(config, PostgresState):
        from syncctl.state.postgres import PostgresBackend

        return PostgresBackend(config, policy=policy.name, tenant=policy.tenant.id)
    if isinstance(config, AzureBlobState):
        from syncctl.state.azure_blob import AzureBlobBackend

        return AzureBlobBackend(config, policy=policy)
    raise SyncctlError(f"policy {policy.name}: unknown state backend {config!r}")
