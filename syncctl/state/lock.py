"""One run per policy at a time: a lock file beside the state file.

The lock file holds who took it (user@host, pid, operation, start time, a random id). It is
created atomically with its full content (written to a temp file, then ``os.link``ed into
place, which fails if the lock exists: the O_EXCL guarantee without a window where the file
is empty). A lock is *stale* when its pid is dead on this host, or when it is older than the
TTL (a holder on another machine that vanished). Stale locks are removed under a short
``flock`` of the state directory so two waiters cannot both "recover" and then both hold the lock.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncctl.errors import LockHeldError
from syncctl.state.store import StateError, iso, parse_iso

DEFAULT_TTL = timedelta(hours=6)
POLL_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class LockInfo:
    id: str
    policy: str
    operation: str
    holder: str  # user@host
    host: str
    pid: int
    created: str  # ISO 8601 UTC

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy": self.policy,
            "operation": self.operation,
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockInfo:
        return cls(
            id=str(data["id"]),
            policy=str(data["policy"]),
            operation=str(data["operation"]),
            holder=str(data["holder"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            created=str(data["created"]),
        )

    def describe(self) -> str:
        return (
            f"{self.holder} (pid {self.pid}, {self.operation} since {self.created}, id {self.id})"
        )


def lock_path_for(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def is_stale(info: LockInfo, *, now: datetime, ttl: timedelta) -> bool:
    if info.host == socket.gethostname() and info.pid > 0 and not _pid_alive(info.pid):
        return True
    try:
        created = parse_iso(info.created)
    except ValueError:
        return True
    return now - created > ttl


def read_lock(path: Path) -> LockInfo | None:
    """The current holder, or None when unlocked. A malformed lock file counts as held by
    "unknown" so that a half-understood lock is never silently ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read lock file: {exc.strerror}") from None
    try:
        return LockInfo.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        # Age it by the file's mtime so the TTL still frees it eventually.
        try:
            created = iso(datetime.fromtimestamp(path.stat().st_mtime, UTC))
        except OSError:
            created = iso(datetime.now(UTC))
        return LockInfo("unknown", "unknown", "unknown", "unknown", "unknown", 0, created)


@contextmanager
def _guard(path: Path) -> Iterator[None]:
    # flock on the directory itself: no extra file, released by the kernel if we die.
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class PolicyLock:
    """The held lock of one policy; ``release`` removes it only if it is still ours."""

    def __init__(self, path: Path, info: LockInfo) -> None:
        self.path = path
        self.info = info

    def release(self) -> None:
        with _guard(self.path):
            current = read_lock(self.path)
            if current is not None and current.id == self.info.id:
                self.path.unlink(missing_ok=True)


def _try_create(path: Path, info: LockInfo) -> bool:
    tmp = path.with_name(f".{path.name}.{info.id}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(info.to_dict(), handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def acquire(
    state_path: Path,
    *,
    policy: str,
    operation: str,
    timeout: float = 0.0,
    ttl: timedelta = DEFAULT_TTL,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PolicyLock:
    """Take the policy's lock, waiting up to ``timeout`` seconds; raises LockHeldError."""
    path = lock_path_for(state_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"{path.parent}: cannot create state directory: {exc.strerror}") from None
    host = socket.gethostname()
    info = LockInfo(
        id=str(uuid.uuid4()),
        policy=policy,
        operation=operation,
        holder=f"{_user()}@{host}",
        host=host,
        pid=os.getpid(),
        created=iso(clock()),
    )
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        try:
            if _try_create(path, info):
                return PolicyLock(path, info)
            with _guard(path):
                holder = read_lock(path)
                if holder is not None and is_stale(holder, now=clock(), ttl=ttl):
                    path.unlink(missing_ok=True)
                    continue
        except OSError as exc:
            raise StateError(f"{path}: cannot take lock: {exc.strerror}") from None
        if holder is None:
            continue  # released between our attempt and the check: try again at once
        if time.monotonic() >= deadline:
            raise LockHeldError(
                f'policy "{policy}" is locked by {holder.describe()}; lock file {path} '
                "(wait with --lock-timeout, or remove the file if that run is gone)"
            )
        time.sleep(POLL_SECONDS)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"
