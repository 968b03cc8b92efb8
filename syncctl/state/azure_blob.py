"""``state.backend: azure_blob``: the state and its lock as blobs in one container.

``{tenant}/{policy}.state.json`` holds the ``render_state`` document; a concurrent writer is
detected by its ETag (``If-Match``, or ``If-None-Match: *`` for the first save), never
overwritten. ``{tenant}/{policy}.lock`` is an empty blob whose lease is the lock (see
``syncctl.state.lease``); the holder is described in its metadata, written under the lease.
The container is created when a first write finds it missing. Blobs are block blobs
``{tenant}/{policy}.blobs/{name}``: one upload each, which Blob Storage commits whole (one Put
Blob, or the SDK's blocks and one Put Block List for large data), so a reader sees the old
blob, the new one or none; ``list_states`` skips them (they sit one level down).
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from syncctl.errors import LockHeldError, SyncctlError
from syncctl.redaction import mask, remember
from syncctl.state.backend import StateConflictError, check_blob_name
from syncctl.state.lease import BlobLeaseLock, break_lock, current_holder, error_code, try_lease
from syncctl.state.local import BLOBS_SUFFIX
from syncctl.state.lock import UNKNOWN_ID, LockInfo, lock_held, new_lock_info
from syncctl.state.store import State, StateError, parse_state, render_state

if TYPE_CHECKING:
    import httpx
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient

    from syncctl.policy.model import AzureBlobState, Policy

LEASE_SECONDS = 60
POLL_SECONDS = 0.5
# azure-storage retries 3 times with 15 s+ pauses and waits 20 s per connection by default:
# minutes before an unreachable endpoint is reported. 3 attempts of 3 s with 1 s pauses.
RETRY_TOTAL = 2
CONNECTION_TIMEOUT = 3
READ_TIMEOUT = 20
STATE_SUFFIX = ".state.json"
_SECRET_PARTS = re.compile(r"(?:AccountKey|SharedAccessSignature)=([^;]+)", re.IGNORECASE)
_QUERY = re.compile(r"\?[^\s'\")]*")
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")
_T = TypeVar("_T")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(exc: AzureError) -> str:
    """One line saying what went wrong, from codes only: service messages can quote the
    signed request, and transport errors the URL with its SAS."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    if isinstance(exc, HttpResponseError):
        code = error_code(exc) or (exc.reason or "")
        hint = {
            "AuthenticationFailed": "the account key or SAS was rejected",
            "AuthorizationPermissionMismatch": (
                "the identity needs the Storage Blob Data Contributor role on the container"
            ),
            "AuthorizationFailure": (
                "the request is not authorised (wrong account key or SAS, network rules?)"
            ),
            "InvalidAuthenticationInfo": "the credential was rejected",
        }.get(code)
        return f"HTTP {exc.status_code} {code}" + (f" ({hint})" if hint else "")
    detail = _ERRNO.search(str(exc))
    text = detail.group(0) if detail else str(exc).strip().splitlines()[0][:200]
    prefix = "cannot reach the endpoint" if isinstance(exc, ServiceRequestError) else "failed"
    return f"{prefix}: {_QUERY.sub('', text)}"


class AzureBlobBackend:
    kind = "azure_blob"

    def __init__(self, config: AzureBlobState, *, policy: Policy) -> None:
        self._policy = policy.name
        self._tenant = policy.tenant.id
        self._container_name = config.container
        self._state_name = f"{self._tenant}/{self._policy}{STATE_SUFFIX}"
        self._lock_name = f"{self._tenant}/{self._policy}.lock"
        self._blob_prefix = f"{self._tenant}/{self._policy}{BLOBS_SUFFIX}/"
        self._guard = threading.Lock()
        self._etag: str | None = None
        self._held: BlobLeaseLock | None = None
        self._http: httpx.Client | None = None
        self._location = f"azure blob container {config.container}"
        self._service = self._connect(config, policy)
        account = urlsplit(self._service.url)
        self._location = "azure blob " + "/".join(
            (
                urlunsplit((account.scheme, account.netloc, account.path.rstrip("/"), "", "")),
                config.container,
                self._state_name,
            )
        )
        if account.scheme != "https" and not _is_loopback(account.hostname or ""):
            raise self._error("plain http is allowed only for a loopback emulator; use https")
        self._container = self._service.get_container_client(config.container)
        self._state_blob = self._container.get_blob_client(self._state_name)
        self._lock_blob = self._container.get_blob_client(self._lock_name)

    def _connect(self, config: AzureBlobState, policy: Policy) -> BlobServiceClient:
        try:
            from azure.storage.blob import BlobServiceClient, LinearRetry
        except ImportError:
            raise self._error(
                "azure-storage-blob is not installed (pip install 'azure-storage-blob>=12')"
            ) from None
        options: dict[str, Any] = {
            "retry_policy": LinearRetry(backoff=1, retry_total=RETRY_TOTAL, random_jitter_range=1),
            "connection_timeout": CONNECTION_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
        }
        try:
            if policy.tenant.ca_bundle is not None:
                from syncctl.source.storage_token import storage_transport

                options["transport"] = storage_transport(
                    policy.tenant.ca_bundle,
                    connection_timeout=CONNECTION_TIMEOUT,
                    read_timeout=READ_TIMEOUT,
                )
            if config.connection_string is not None:
                text = config.connection_string.reveal()
                for part in _SECRET_PARTS.findall(text):
                    remember(part)
                return BlobServiceClient.from_connection_string(text, **options)
            assert config.account_url is not None
            from syncctl.source.http import build_http_client
            from syncctl.source.storage_token import StorageTokenCredential

            self._http = build_http_client(policy.tenant.ca_bundle)
            credential = StorageTokenCredential(policy.tenant, self._http)
            return BlobServiceClient(config.account_url, credential=credential, **options)
        except ValueError as exc:  # a malformed connection string or URL
            raise self._error(f"invalid {self._what(config)}: {mask(str(exc))}") from None
        except SyncctlError as exc:
            raise self._error(str(exc)) from None

    @staticmethod
    def _what(config: AzureBlobState) -> str:
        return "connection_string" if config.connection_string is not None else "account_url"

    @property
    def location(self) -> str:
        return self._location

    @property
    def _prefix(self) -> str:
        return f"policy {self._policy}: state backend azure_blob ({self._location})"

    def _error(self, text: str, kind: type[StateError] = StateError) -> StateError:
        return kind(f"{self._prefix}: {text}")

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        from azure.core.exceptions import AzureError

        try:
            yield
        except (StateError, LockHeldError):
            raise
        except AzureError as exc:
            raise self._error(f"{doing}: {mask(_reason(exc))}") from None
        except SyncctlError as exc:  # sign-in failures raised from inside the SDK's pipeline
            raise self._error(f"{doing}: {exc}") from None

    def _creating_container(self, write: Callable[[], _T]) -> _T:
        """``write()``, once more after creating the container if it is missing."""
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        try:
            return write()
        except HttpResponseError as exc:
            if error_code(exc) != "ContainerNotFound":
                raise
        try:
            self._container.create_container()
        except ResourceExistsError:
            pass  # another run created it meanwhile
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise self._error(
                    f"container {self._container_name} does not exist and this credential "
                    f"may not create it ({mask(_reason(exc))}): create it, or grant Storage "
                    "Blob Data Contributor on the storage account"
                ) from None
            raise
        return write()

    # ---- state -----------------------------------------------------------------------
    def load(self) -> State | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._guard, self._errors("cannot read state"):
            try:
                download = self._state_blob.download_blob(encoding="utf-8")
                text = download.readall()
            except ResourceNotFoundError:  # BlobNotFound or ContainerNotFound: a first run
                self._etag = None
                return None
            self._etag = download.properties.etag
            return parse_state(text, self._prefix, policy=self._policy, tenant=self._tenant)

    def save(self, state: State) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.core.exceptions import ResourceNotFoundError as NotFound
        from azure.storage.blob import ContentSettings

        held = self._held
        if held is not None:
            held.check()
        body = render_state(state.for_tenant(self._tenant)).encode("utf-8")
        settings = ContentSettings(content_type="application/json")
        with self._guard, self._errors("cannot write state"):
            etag = self._etag
            condition: dict[str, Any] = (
                {"overwrite": False}
                if etag is None
                else {
                    "overwrite": True,
                    "etag": etag,
                    "match_condition": MatchConditions.IfNotModified,
                }
            )
            try:
                result = self._creating_container(
                    lambda: self._state_blob.upload_blob(
                        body, content_settings=settings, **condition
                    )
                )
            except (ResourceExistsError, ResourceModifiedError, NotFound):
                # Exists though we found none, changed or deleted since we read it.
                raise self._error(
                    "the state blob changed: another run wrote it since this run read it; "
                    "not overwriting",
                    StateConflictError,
                ) from None
            self._etag = str(result["etag"])

    def list_states(self) -> Sequence[State]:
        from azure.core.exceptions import ResourceNotFoundError

        prefix = f"{self._tenant}/"
        states: list[State] = []
        with self._errors("cannot list states"):
            try:
                names = sorted(
                    b.name
                    for b in self._container.list_blobs(name_starts_with=prefix)
                    if b.name.endswith(STATE_SUFFIX) and "/" not in b.name[len(prefix) :]
                )
            except ResourceNotFoundError:
                return []
            for name in names:
                try:
                    text = self._container.download_blob(name, encoding="utf-8").readall()
                except ResourceNotFoundError:
                    continue  # deleted while listing
                where = self._prefix.replace(self._state_name, name)  # the other blob's
                state = parse_state(text, where, policy=None, tenant=None)
                if state.tenant in (None, self._tenant):
                    states.append(state)
        return states

    # ---- blobs -----------------------------------------------------------------------
    def save_blob(self, name: str, data: bytes) -> None:
        blob = self._container.get_blob_client(self._blob_prefix + check_blob_name(name))
        with self._errors(f"cannot write blob {name}"):
            self._creating_container(lambda: blob.upload_blob(data, overwrite=True))

    def load_blob(self, name: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._container.get_blob_client(self._blob_prefix + check_blob_name(name))
        with self._errors(f"cannot read blob {name}"):
            try:
                # Read in ranges, each conditional on the first one's ETag: a blob replaced
                # meanwhile fails the read instead of mixing two versions.
                return blob.download_blob().readall()
            except ResourceNotFoundError:  # BlobNotFound, or ContainerNotFound: none saved yet
                return None

    def prune_blobs(self, keep: Collection[str]) -> None:
        from azure.core.exceptions import AzureError

        keeping = set(keep)
        try:
            names = [b.name for b in self._container.list_blobs(name_starts_with=self._blob_prefix)]
        except (AzureError, SyncctlError):  # SyncctlError: a sign-in failure
            return  # best effort, like each delete below: a later prune tries again
        for name in names:
            if name[len(self._blob_prefix) :] not in keeping:
                with suppress(AzureError, SyncctlError):
                    self._container.delete_blob(name)

    # ---- lock ------------------------------------------------------------------------
    def lock(self, *, operation: str, timeout: float, ttl: timedelta) -> BlobLeaseLock:
        """``ttl`` does not apply: a dead holder's lease expires within LEASE_SECONDS."""
        from azure.core.exceptions import ResourceExistsError

        info = new_lock_info(self._policy, operation)
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._errors("cannot take the lock"):
            # Usually there already: the lock blob is created once, then only leased.
            with suppress(ResourceExistsError):
                self._creating_container(lambda: self._lock_blob.upload_blob(b"", overwrite=False))
            while True:
                held, holder = try_lease(
                    self._lock_blob,
                    info,
                    seconds=LEASE_SECONDS,
                    where=self._prefix,
                    on_release=self._forget,
                )
                if held is not None:
                    self._held = held
                    return held
                if time.monotonic() >= deadline:
                    where = self._location.removesuffix(STATE_SUFFIX) + ".lock"
                    raise lock_held(
                        self._policy,
                        "another run" if holder is None else holder.describe(),
                        f"lock blob {where}",
                        unlock_id=None if holder is None or holder.id == UNKNOWN_ID else holder.id,
                        frees_itself=f"a gone run's lease expires within {LEASE_SECONDS} s",
                    )
                time.sleep(POLL_SECONDS)

    def _forget(self, held: BlobLeaseLock) -> None:
        if self._held is held:
            self._held = None

    def read_lock(self) -> LockInfo | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors("cannot read the lock"):
            try:
                return current_holder(self._lock_blob.get_blob_properties())
            except ResourceNotFoundError:
                return None

    def force_unlock(self, lock_id: str) -> LockInfo:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors("cannot remove the lock"):
            try:
                return break_lock(self._lock_blob, lock_id, where=self._prefix)
            except ResourceNotFoundError:
                raise self._error("not locked") from None

    def close(self) -> None:
        held = self._held
        if held is not None:
            held.release()  # not merely stopping the renewer: the next run need not wait
        self._service.close()
        if self._http is not None:
            self._http.close()
