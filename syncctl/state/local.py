"""``state.backend: local``: the state file and its lock file beside the policy.

The file is replaced atomically (``syncctl.fileio``); the lock (``syncctl.state.lock``) keeps
two runs on this machine apart. A concurrent writer is detected by the file's identity
(device, inode, size, mtime): every save replaces the file, so a save by anyone else since
this run's load or last save changes it.

Blobs are files in ``POLICY.blobs/`` beside the state file, replaced atomically like it; the
directory is created by the first ``save_blob``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Sequence
from contextlib import suppress
from datetime import timedelta
from pathlib import Path

from syncctl.fileio import write_bytes_atomic
from syncctl.state.backend import BLOB_NAME, StateConflictError, check_blob_name
from syncctl.state.lock import LockInfo, PolicyLock, acquire, force_unlock, lock_path_for, read_lock
from syncctl.state.store import State, StateError, load_state, save_state

STATE_SUFFIX = ".state.json"
BLOBS_SUFFIX = ".blobs"
_Stamp = tuple[int, int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read state file: {exc.strerror}") from None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


class LocalLock:
    def __init__(self, held: PolicyLock) -> None:
        self._held = held

    @property
    def info(self) -> LockInfo:
        return self._held.info

    def check(self) -> None:
        current = read_lock(self._held.path)
        if current is None or current.id != self._held.info.id:
            raise StateError(
                f"{self._held.path}: this run's lock was removed (force-unlock?); not writing on"
            )

    def release(self) -> None:
        self._held.release()


class LocalBackend:
    kind = "local"

    def __init__(self, path: Path, *, policy: str, tenant: str) -> None:
        self.path = path
        self._policy = policy
        self._tenant = tenant
        self._seen: _Stamp = None
        self._guard = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.path)

    def load(self) -> State | None:
        with self._guard:
            self._seen = _stamp(self.path)
            if self._seen is None:
                return None
            return load_state(self.path, self._policy, tenant=self._tenant)

    def save(self, state: State) -> None:
        with self._guard:
            if _stamp(self.path) != self._seen:
                raise StateConflictError(
                    f"{self.path}: the state file changed since this run read it "
                    "(another run wrote it); not overwriting"
                )
            save_state(self.path, state.for_tenant(self._tenant))
            self._seen = _stamp(self.path)

    def lock(self, *, operation: str, timeout: float, ttl: timedelta) -> LocalLock:
        return LocalLock(
            acquire(self.path, policy=self._policy, operation=operation, timeout=timeout, ttl=ttl)
        )

    def read_lock(self) -> LockInfo | None:
        return read_lock(lock_path_for(self.path))

    def force_unlock(self, lock_id: str) -> LockInfo:
        return force_unlock(self.path, lock_id)

    def list_states(self) -> Sequence[State]:
        """The state files in this one's directory that belong to this tenant."""
        try:
            paths = sorted(self.path.parent.glob("*" + STATE_SUFFIX))
        except OSError as exc:
            raise StateError(f"{self.path.parent}: cannot list states: {exc.strerror}") from None
        # An unreadable state of another policy fails the listing: what it claims is unknown.
        states = [load_state(path, None) for path in paths]
        return [s for s in states if s.tenant in (None, self._tenant)]

    # ---- blobs -----------------------------------------------------------------------
    @property
    def blob_dir(self) -> Path:
        return self.path.parent / f"{self._policy}{BLOBS_SUFFIX}"

    def save_blob(self, name: str, data: bytes) -> None:
        path = self.blob_dir / check_blob_name(name)
        try:
            write_bytes_atomic(path, data)
        except OSError as exc:
            raise StateError(f"{path}: cannot write blob: {exc.strerror or exc}") from None

    def load_blob(self, name: str) -> bytes | None:
        path = self.blob_dir / check_blob_name(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{path}: cannot read blob: {exc.strerror or exc}") from None

    def prune_blobs(self, keep: Collection[str]) -> None:
        try:
            found = os.listdir(self.blob_dir)
        except OSError:
            return  # none yet, or unreadable: a later prune tries again
        keeping = set(keep)
        for name in found:
            # Temp files (".NAME.xxx.tmp") are no blob names: a writer may still own them.
            if name not in keeping and BLOB_NAME.fullmatch(name) and ".." not in name:
                with suppress(OSError):
                    (self.blob_dir / name).unlink()

    def close(self) -> None:
        return None
