"""The Blob backend's held lock: a blob lease kept alive by a daemon thread.

A lease is the lock because Azure frees it by itself when the holder stops renewing (a
SIGKILLed pod, a cancelled CI job), so no TTL or pid check is needed. The renewer renews
every third of the lease; ``check`` renews too, synchronously, so that a lease broken by
``force-unlock`` is noticed before the next write, not up to a renewal interval later.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from syncctl.state.lock import UNKNOWN_ID, LockInfo, unknown_holder
from syncctl.state.store import StateError, iso

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobClient, BlobLeaseClient, BlobProperties

# Answers that say the lease is not ours any more (broken, expired and taken by another run,
# the blob gone), as opposed to a failure to ask (network, 5xx): those are retried until the
# lease would have expired anyway.
_LOST_STATUSES = frozenset({400, 404, 409, 412})
_HELD = frozenset({"leased", "breaking"})
_LOCK_FIELDS = ("id", "policy", "operation", "holder", "host", "pid", "process_start", "created")


def error_code(exc: HttpResponseError) -> str | None:
    """The storage service's error code (``x-ms-error-code``), which azure-storage-blob
    sets on the exceptions it raises without declaring it."""
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # a StorageErrorCode when the SDK knows the code
    return str(code) if code else None


class BlobLeaseLock:
    """A ``HeldLock`` on the lock blob; ``where`` prefixes its messages."""

    def __init__(
        self,
        blob: BlobClient,
        lease: BlobLeaseClient,
        info: LockInfo,
        *,
        seconds: int,
        where: str,
        on_release: Callable[[BlobLeaseLock], None] = lambda held: None,
    ) -> None:
        self._blob = blob
        self._lease = lease
        self._info = info
        self._seconds = seconds
        self._where = where
        self._on_release = on_release
        self._guard = threading.Lock()  # BlobLeaseClient records each answer's ETag: not shared
        self._stop = threading.Event()
        self._confirmed = time.monotonic()
        self._lost: str | None = None
        self._released = False
        self._thread = threading.Thread(
            target=self._run, name=f"syncctl-lease-{info.policy}", daemon=True
        )
        self._thread.start()

    @property
    def info(self) -> LockInfo:
        return self._info

    def check(self) -> None:
        if self._released:
            raise StateError(f"{self._where}: this run's lock was released; not writing on")
        self._renew()
        if self._lost is not None:
            raise StateError(f"{self._where}: {self._lost}; not writing on")

    def release(self) -> None:
        with self._guard:
            if self._released:
                return
            self._released = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._on_release(self)
        if self._lost is not None:
            return  # the lease may be someone else's by now: touch nothing
        from azure.core.exceptions import AzureError

        try:
            with self._guard:
                # Metadata first, under our lease: once released, clearing would race the
                # next holder's write of its own.
                self._blob.set_blob_metadata({}, lease=self._lease)
                self._lease.release()
        except AzureError:
            # Not fatal and not reported: an unreleased lease expires within ``seconds``, and
            # release runs in ``finally`` blocks where raising would hide the real failure.
            pass

    def _run(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            self._renew()
            if self._lost is not None:
                return

    def _renew(self) -> None:
        from azure.core.exceptions import AzureError, HttpResponseError

        with self._guard:
            if self._lost is not None or self._released:
                return
            try:
                self._lease.renew()
            except HttpResponseError as exc:
                if exc.status_code in _LOST_STATUSES:
                    code = error_code(exc) or f"HTTP {exc.status_code}"
                    self._lost = f"this run's lock lease was lost ({code}; force-unlock?)"
                    return
                self._expire_if_overdue(f"HTTP {exc.status_code}")
                return
            except AzureError as exc:
                self._expire_if_overdue(type(exc).__name__)
                return
            self._confirmed = time.monotonic()

    def _expire_if_overdue(self, reason: str) -> None:
        if time.monotonic() - self._confirmed >= self._seconds:
            self._lost = (
                f"this run's lock lease could not be renewed for {self._seconds} s ({reason}) "
                "and has expired"
            )


def _encode(info: LockInfo) -> dict[str, str]:
    # Metadata travels as HTTP headers: ASCII only, so user and host names are %-encoded.
    values = info.to_dict()
    return {k: quote(str(values[k]), safe="") for k in _LOCK_FIELDS if values[k] is not None}


def _decode(metadata: Mapping[str, str], when: datetime | None) -> LockInfo:
    fields = {k.lower(): unquote(v) for k, v in metadata.items()}
    try:
        return LockInfo.from_dict(fields)
    except (KeyError, ValueError, TypeError):
        # Leased without (readable) metadata: between a lease and its metadata write, or
        # written by something else. Held all the same; only its lease expiry frees it.
        created = iso(when or datetime.now(UTC))
        return unknown_holder(created)


def current_holder(props: BlobProperties) -> LockInfo | None:
    """The lock blob's holder; None when its lease is not held (an expired lease is free,
    whatever metadata its dead holder left behind)."""
    if props.lease.state not in _HELD:
        return None
    return _decode(props.metadata, props.last_modified)


def try_lease(
    blob: BlobClient,
    info: LockInfo,
    *,
    seconds: int,
    where: str,
    on_release: Callable[[BlobLeaseLock], None],
) -> tuple[BlobLeaseLock | None, LockInfo | None]:
    """The lock, or None and its holder (None too when another run was just quicker)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError

    props = blob.get_blob_properties()
    holder = current_holder(props)
    if holder is not None:
        return None, holder
    unchanged = MatchConditions.IfNotModified
    try:
        etag = props.etag
        if props.metadata:
            # A dead holder's: cleared before leasing (only if nobody leased meanwhile), so
            # that nobody reads it as ours and force-unlocks us by its id.
            answer = blob.set_blob_metadata({}, etag=etag, match_condition=unchanged)
            etag = str(answer["etag"])
        lease = blob.acquire_lease(seconds, str(uuid.uuid4()), etag=etag, match_condition=unchanged)
        blob.set_blob_metadata(_encode(info), lease=lease)
    except HttpResponseError as exc:
        # Leased or changed by someone else between our look and our request, or
        # force-unlocked between the lease and its metadata: look again.
        if exc.status_code in (409, 412):
            return None, None
        raise
    return BlobLeaseLock(
        blob, lease, info, seconds=seconds, where=where, on_release=on_release
    ), None


def break_lock(blob: BlobClient, lock_id: str, *, where: str) -> LockInfo:
    """Break the lease at once if its holder's id is ``lock_id``; StateError otherwise."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobLeaseClient

    props = blob.get_blob_properties()
    holder = current_holder(props)
    if holder is None:
        raise StateError(f"{where}: not locked")
    if holder.id != lock_id or holder.id == UNKNOWN_ID:
        raise StateError(
            f"{where}: lock id {lock_id} does not match the lock, which is "
            f"{holder.describe()}; nothing removed"
        )
    unchanged = MatchConditions.IfNotModified
    try:
        # If-Match: a lock released and taken again since we looked has new metadata, hence
        # a new ETag, and is left alone.
        BlobLeaseClient(blob).break_lease(
            lease_break_period=0, etag=props.etag, match_condition=unchanged
        )
    except HttpResponseError as exc:
        if exc.status_code == 412:
            raise StateError(f"{where}: the lock changed meanwhile; nothing removed") from None
        raise
    # Fails when leased again already: the new holder's metadata stays.
    with suppress(HttpResponseError):
        blob.set_blob_metadata({}, etag=props.etag, match_condition=unchanged)
    return holder
