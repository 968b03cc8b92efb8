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
  Blob: the lease expires), and ``force_unlock`` removes it by id for everything else;
- ``save_blob`` / ``load_blob`` / ``prune_blobs`` keep the policy's large, rarely changing
  documents (the cached Entra slice of ``syncctl.source.cache``) beside the state. Blobs are
  named by their content's digest and written before the state that names them, so a state
  never points at a blob that is not whole, and journal saves during an apply stay small.

A backend object belongs to one policy and one run; it may be used from several threads.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from syncctl.errors import SyncctlError
from syncctl.state.lock import LockInfo
from syncctl.state.store import State, StateError

if TYPE_CHECKING:
    from syncctl.policy.model import Policy


# The contract's [a-z0-9.-]{1,100}, also starting and ending with a letter or digit: a
# leading dot would hide the file (and match the temp files beside it), a trailing one is
# dropped from Blob Storage URLs.
BLOB_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,98}[a-z0-9])?")


def check_blob_name(name: str) -> str:
    """``name`` if it may name a blob in every backend; ValueError (a caller's bug) if not."""
    if not isinstance(name, str) or not BLOB_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"invalid blob name {name!r}: want [a-z0-9.-], at most 100, no '..'")
    return name


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

    def save_blob(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` (``check_blob_name``; by convention
        ``KIND-SHA256HEX``) for this policy and tenant, atomically: a reader sees
        the whole blob or none. Saving a name that exists replaces it (same name, same bytes).
        Not guarded by the state's conflict check: the state that names a blob is."""

    def load_blob(self, name: str) -> bytes | None:
        """The blob's bytes, or None when there is no blob of that name; StateError when the
        store cannot be read (never None because of an error)."""

    def prune_blobs(self, keep: Collection[str]) -> None:
        """Delete this policy's blobs whose names are not in ``keep`` (best effort: a blob
        that cannot be deleted now, or a store that cannot be listed, is left for a later
        prune, never an error)."""

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
