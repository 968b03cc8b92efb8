"""One run per policy at a time: a lock file beside the state file.

The lock file holds who took it (user@host, pid, the process's start, operation, start time,
a random id). It is created atomically with its full content (written to a 0600 temp file,
then ``os.link``ed into place, which fails if the lock exists: the O_EXCL guarantee without a
window where the file is empty). Whether a lock still has a holder is decided like this:

- taken on this host and its pid is dead, or alive but started at another time than the
  holder did (the pid was reused: after a reboot, or syncctl as pid 1 of a restarted
  container): stale, removed at once;
- taken on this host by a process that is verifiably the holder: held, however old;
- anything that cannot be verified (another host, a lock without the process start, no
  ``/proc``): held until it is older than the TTL (``state.lock_ttl``, default 6 hours), or
  until ``syncctl force-unlock POLICY LOCK_ID`` removes it.

Stale locks are removed under a short ``flock`` of the state directory so two waiters cannot
both "recover" and then both hold the lock.
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
from enum import StrEnum
from pathlib import Path
from typing import Any

from syncctl.errors import LockHeldError
from syncctl.state.store import StateError, iso, parse_iso

DEFAULT_TTL = timedelta(hours=6)
POLL_SECONDS = 0.1
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True, slots=True)
class LockInfo:
    id: str
    policy: str
    operation: str
    holder: str  # user@host
    host: str
    pid: int
    created: str  # ISO 8601 UTC
    # "<boot id>:<start time in clock ticks>" of the holding process (Linux), which tells the
    # holder from a later process that got the same pid; None where it cannot be known.
    process_start: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy": self.policy,
            "operation": self.operation,
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "process_start": self.process_start,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockInfo:
        started = data.get("process_start")  # absent in locks of older syncctl versions
        return cls(
            id=str(data["id"]),
            policy=str(data["policy"]),
            operation=str(data["operation"]),
            holder=str(data["holder"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            created=str(data["created"]),
            process_start=None if started is None else str(started),
        )

    def describe(self) -> str:
        return (
            f"{self.holder} (pid {self.pid}, {self.operation} since {self.created}, id {self.id})"
        )


UNKNOWN_ID = "unknown"  # the id of a lock whose holder cannot be read


def unknown_holder(created: str, *, policy: str = "unknown", holder: str = "unknown") -> LockInfo:
    """A lock that is held by someone this run cannot identify: never ignored, and no
    force-unlock by a made-up id (only expiry, the TTL or the lock's own id frees it)."""
    return LockInfo(UNKNOWN_ID, policy, "unknown", holder, "unknown", 0, created)


def lock_held(
    policy: str, who: str, where: str, *, unlock_id: str | None, frees_itself: str | None = None
) -> LockHeldError:
    """The refusal every backend gives when another run holds the policy's lock: who, where,
    and the ways out."""
    ways = ["wait with --lock-timeout"]
    if frees_itself is not None:
        ways.append(frees_itself)
    if unlock_id is not None:
        ways.append(f"if that run is gone: syncctl force-unlock {policy} {unlock_id}")
    return LockHeldError(f'policy "{policy}" is locked by {who}; {where} ({"; ".join(ways)})')


class Holder(StrEnum):
    """What can be known about a lock's holder from here."""

    RUNNING = "running"  # on this host, and verifiably the process that took the lock
    GONE = "gone"  # on this host, and that process no longer exists
    UNKNOWN = "unknown"  # another host, or not verifiable: only the TTL or force-unlock frees it


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


def process_start(pid: int) -> str | None:
    """``<boot id>:<start time>`` of a live process (Linux ``/proc``), None when unknown.

    The start time (field 22 of ``/proc/PID/stat``, clock ticks since boot) differs between
    two processes that get the same pid one after the other; the boot id makes it unique
    across reboots, when a lock file on persistent storage outlives the machine's uptime.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", "replace")
        boot = _BOOT_ID.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces or ")".
    fields = stat.rpartition(")")[2].split()
    try:
        ticks = int(fields[19])  # fields[0] is field 3 (state), so field 22 is fields[19]
    except (IndexError, ValueError):
        return None
    return f"{boot}:{ticks}"


def new_lock_info(policy: str, operation: str, *, created: datetime | None = None) -> LockInfo:
    """Who is taking a lock, in every backend: this process, user@host, a fresh id."""
    host, pid = socket.gethostname(), os.getpid()
    return LockInfo(
        id=str(uuid.uuid4()),
        policy=policy,
        operation=operation,
        holder=f"{_user()}@{host}",
        host=host,
        pid=pid,
        created=iso(created or datetime.now(UTC)),
        process_start=process_start(pid),
    )


def holder_status(info: LockInfo) -> Holder:
    if info.host != socket.gethostname() or info.pid <= 0:
        return Holder.UNKNOWN
    if not _pid_alive(info.pid):
        return Holder.GONE
    if info.process_start is None:
        return Holder.UNKNOWN  # a lock written without it: the pid may have been reused
    current = process_start(info.pid)
    if current is None:
        return Holder.UNKNOWN  # /proc hidden from us (hidepid): cannot tell
    return Holder.RUNNING if current == info.process_start else Holder.GONE


def is_stale(info: LockInfo, *, now: datetime, ttl: timedelta) -> bool:
    status = holder_status(info)
    if status is not Holder.UNKNOWN:
        return status is Holder.GONE
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
        return unknown_holder(created)


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
    # 0600 like the state file: the lock names a user, a host and a pid.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
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
    info = new_lock_info(policy, operation, created=clock())
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
            # A malformed lock file is removed by its id "unknown", so the hint stays.
            raise lock_held(policy, holder.describe(), f"lock file {path}", unlock_id=holder.id)
        time.sleep(POLL_SECONDS)


def held_lock(state_path: Path, lock_id: str) -> LockInfo:
    """The policy's lock when its id is ``lock_id``; StateError when unlocked or the id
    differs (what ``force-unlock`` checks before asking, and again under the guard)."""
    path = lock_path_for(state_path)
    holder = read_lock(path)
    if holder is None:
        raise StateError(f"{path}: not locked")
    if holder.id != lock_id:
        raise StateError(
            f"{path}: lock id {lock_id} does not match the lock, which is "
            f"{holder.describe()}; nothing removed"
        )
    return holder


def force_unlock(state_path: Path, lock_id: str) -> LockInfo:
    """Remove the policy's lock if (still) its id is ``lock_id``; returns what was removed.

    Compare-and-delete under the directory guard, so a lock taken by a new run after the
    user looked is never the one removed. Raises StateError when unlocked or the id differs.
    """
    path = lock_path_for(state_path)
    try:
        with _guard(path):
            holder = held_lock(state_path, lock_id)
            path.unlink()
    except FileNotFoundError:
        raise StateError(f"{path}: not locked") from None
    except OSError as exc:
        raise StateError(f"{path}: cannot remove lock: {exc.strerror}") from None
    return holder


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"
