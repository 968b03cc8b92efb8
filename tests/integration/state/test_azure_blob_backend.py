"""What only the Blob backend has: containers, account keys, endpoints, leases.

The shared state contract suite covers load/save/lock semantics for every backend; these
tests cover how the Blob-specific parts fail and recover, against a real Azurite.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.errors import LockHeldError
from syncctl.policy.model import (
    AzureBlobState,
    ClientSecretCredential,
    Endpoints,
    Policy,
    SecretRef,
    Tenant,
)
from syncctl.state import azure_blob
from syncctl.state.azure_blob import AzureBlobBackend
from syncctl.state.backend import StateBackend, StateConflictError, open_backend
from syncctl.state.store import State, StateError, render_state
from tests.contract.state_store import StateStore, policy_for, write_policy
from tests.servers.azurite import ACCOUNT_KEY, STATE_ENV, Azurite, free_port, start_azurite, stop

REPO = Path(__file__).resolve().parents[3]
TENANT = "contoso.onmicrosoft.com"
TTL = timedelta(hours=6)  # leases ignore it: any value
WRONG_KEY = "d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5MDE="


@pytest.fixture
def store(azure_blob_state_store: StateStore) -> Iterator[StateStore]:
    with azure_blob_state_store.environment():
        yield azure_blob_state_store


@pytest.fixture
def policy(tmp_path: Path, store: StateStore) -> Policy:
    return policy_for(tmp_path, "hr-sync", store)


@pytest.fixture
def backends(policy: Policy) -> Iterator[list[StateBackend]]:
    """Backends opened by a test (``open_``), closed after it."""
    opened: list[StateBackend] = []
    yield opened
    for backend in opened:
        backend.close()


def open_(backends: list[StateBackend], policy: Policy) -> StateBackend:
    backend = open_backend(policy)
    backends.append(backend)
    return backend


def container_exists(azurite: Azurite, name: str) -> bool:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string()) as service:
        return bool(service.get_container_client(name).exists())


def assert_one_line(error: pytest.ExceptionInfo[StateError], policy: str) -> str:
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"policy {policy}: state backend azure_blob (azure blob http://")
    return text


def test_container_is_created_on_first_write(
    azurite: Azurite, store: StateStore, policy: Policy, backends: list[StateBackend]
) -> None:
    backend = open_(backends, policy)
    assert backend.kind == "azure_blob"
    assert backend.location == (
        f"azure blob {azurite.blob_endpoint}/{store.section['container']}/{TENANT}/"
        "hr-sync.state.json"
    )
    assert backend.load() is None  # reading never creates anything
    assert backend.read_lock() is None
    assert backend.list_states() == []
    assert not container_exists(azurite, store.section["container"])

    state = State(policy="hr-sync", tenant=TENANT, managed=frozenset({"u1"}))
    backend.save(state)

    assert container_exists(azurite, store.section["container"])
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string()) as service:
        blob = service.get_blob_client(store.section["container"], f"{TENANT}/hr-sync.state.json")
        assert blob.download_blob(encoding="utf-8").readall() == render_state(state)
    assert open_(backends, policy).load() == state
    assert backend.list_states() == [state]


def test_wrong_account_key_is_one_line_without_the_key(
    azurite: Azurite, tmp_path: Path, store: StateStore
) -> None:
    os.environ[STATE_ENV] = azurite.connection_string(WRONG_KEY)
    backend = open_backend(policy_for(tmp_path, "hr-sync", store))
    try:
        for attempt in (backend.load, lambda: backend.save(State(policy="hr-sync"))):
            with pytest.raises(StateError) as error:
                attempt()
            text = assert_one_line(error, "hr-sync")
            # Azure answers AuthenticationFailed, Azurite AuthorizationFailure.
            assert (
                "HTTP 403 AuthenticationFailed" in text or "HTTP 403 AuthorizationFailure" in text
            )
            assert WRONG_KEY not in text and WRONG_KEY[:20] not in text
            assert ACCOUNT_KEY[:20] not in text
            assert "Traceback" not in text
    finally:
        backend.close()


def test_unreachable_endpoint_fails_fast_in_one_line(tmp_path: Path, store: StateStore) -> None:
    closed = Azurite(free_port())  # nothing listens there
    os.environ[STATE_ENV] = closed.connection_string()
    backend = open_backend(policy_for(tmp_path, "hr-sync", store))
    try:
        started = time.monotonic()
        with pytest.raises(StateError) as error:
            backend.load()
        assert time.monotonic() - started < 15
        text = assert_one_line(error, "hr-sync")
        assert "cannot read state: cannot reach the endpoint" in text
        assert "AccountKey" not in text and ACCOUNT_KEY[:20] not in text
    finally:
        backend.close()


def test_plain_http_is_refused_for_a_remote_host(tmp_path: Path, store: StateStore) -> None:
    os.environ[STATE_ENV] = (
        f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={ACCOUNT_KEY};"
        "BlobEndpoint=http://storage.example.com/acct;"
    )
    with pytest.raises(StateError, match="plain http is allowed only for a loopback"):
        open_backend(policy_for(tmp_path, "hr-sync", store))


def test_second_writer_after_both_loaded_gets_a_conflict(
    policy: Policy, backends: list[StateBackend]
) -> None:
    first, second = open_(backends, policy), open_(backends, policy)
    # Both start from nothing (If-None-Match: *) ...
    assert first.load() is None and second.load() is None
    first.save(State(policy="hr-sync", managed=frozenset({"a"})))
    with pytest.raises(StateConflictError, match="another run wrote it since this run read it"):
        second.save(State(policy="hr-sync", managed=frozenset({"b"})))
    # ... and from an existing document (If-Match: ETag).
    assert first.load() is not None and second.load() is not None
    first.save(State(policy="hr-sync", managed=frozenset({"c"})))
    first.save(State(policy="hr-sync", managed=frozenset({"d"})))  # its own ETag follows
    with pytest.raises(StateConflictError):
        second.save(State(policy="hr-sync", managed=frozenset({"e"})))
    loaded = open_(backends, policy).load()
    assert loaded is not None and loaded.managed == {"d"}


def test_lock_names_its_holder_and_force_unlock_breaks_the_lease(
    policy: Policy, backends: list[StateBackend]
) -> None:
    holder, other = open_(backends, policy), open_(backends, policy)
    held = holder.lock(operation="apply", timeout=0, ttl=TTL)
    assert other.read_lock() == held.info
    with pytest.raises(LockHeldError) as error:
        other.lock(operation="plan", timeout=0, ttl=TTL)
    assert held.info.holder in str(error.value)
    assert f"syncctl force-unlock hr-sync {held.info.id}" in str(error.value)

    with pytest.raises(StateError, match="does not match the lock"):
        other.force_unlock("00000000-0000-0000-0000-000000000000")
    held.check()  # a refused force-unlock leaves the lock alone

    assert other.force_unlock(held.info.id) == held.info
    assert other.read_lock() is None
    with pytest.raises(StateError, match="lease was lost"):
        held.check()
    holder.load()
    with pytest.raises(StateError, match="lease was lost"):
        holder.save(State(policy="hr-sync"))  # a run that lost its lock writes nothing

    taken = other.lock(operation="apply", timeout=0, ttl=TTL)
    held.release()  # the old holder's release must not free the new holder's lock
    assert other.read_lock() == taken.info
    taken.release()
    taken.release()  # idempotent
    assert other.read_lock() is None
    with pytest.raises(StateError, match="not locked"):
        other.force_unlock(taken.info.id)


@pytest.mark.slow
def test_renewer_keeps_the_lock_past_one_lease(
    policy: Policy, backends: list[StateBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azure_blob, "LEASE_SECONDS", 15)  # Azure's shortest lease
    holder, other = open_(backends, policy), open_(backends, policy)
    held = holder.lock(operation="apply", timeout=0, ttl=TTL)
    taken_at = time.monotonic()
    while time.monotonic() - taken_at < 20:
        with pytest.raises(LockHeldError):
            other.lock(operation="plan", timeout=2, ttl=TTL)  # polls 2 s
    held.check()
    assert other.read_lock() == held.info
    held.release()
    other.lock(operation="plan", timeout=0, ttl=TTL).release()


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import timedelta
    from pathlib import Path

    from syncctl.policy import load_policy
    from syncctl.state import azure_blob
    from syncctl.state.backend import open_backend

    azure_blob.LEASE_SECONDS = 15
    backend = open_backend(load_policy(Path(sys.argv[1])))
    held = backend.lock(operation="apply", timeout=0, ttl=timedelta(hours=6))
    print("locked", held.info.id, flush=True)
    sys.stdin.read()  # hold until killed
    """
)


@pytest.mark.slow
def test_lock_of_a_killed_holder_frees_itself_when_the_lease_expires(
    tmp_path: Path, store: StateStore, policy: Policy, backends: list[StateBackend]
) -> None:
    path = write_policy(tmp_path, "hr-sync", store)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("locked "), line
        lock_id = line.split()[1]
        other = open_(backends, policy)
        holder = other.read_lock()
        assert holder is not None and holder.id == lock_id and holder.pid == child.pid
        with pytest.raises(LockHeldError):
            other.lock(operation="plan", timeout=0, ttl=TTL)
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait()
        held = other.lock(operation="plan", timeout=60, ttl=TTL)
        # Freed by the lease expiring (15 s), not by anything noticing the death.
        assert 5 < time.monotonic() - killed_at < 60
        assert other.read_lock() == held.info
        held.release()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_backend_is_an_azure_blob_backend(policy: Policy, backends: list[StateBackend]) -> None:
    assert isinstance(open_(backends, policy), AzureBlobBackend)


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Azurite]]:
    """Azurite requiring bearer tokens (``--oauth basic``: HTTPS only, issuer and audience
    checked, signature not), with a certificate from the Graph emulator's CA, so the tenant's
    ``ca_bundle`` covers both the sign-in and the storage requests."""
    workdir = tmp_path_factory.mktemp("azurite-oauth")
    with running_emulator(generate_tenant(users=3, groups=1, seed=5)) as emu:
        cert = emu.ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
        cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
        process, server = start_azurite(
            workdir,
            "--oauth",
            "basic",
            "--cert",
            str(workdir / "cert.pem"),
            "--key",
            str(workdir / "key.pem"),
            scheme="https",
        )
        try:
            yield emu, server
        finally:
            stop(process)


def test_account_url_signs_in_with_the_policy_credential(
    oauth_azurite: tuple[Emulator, Azurite],
    tmp_path: Path,
    store: StateStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu, server = oauth_azurite
    monkeypatch.setenv("SYNCCTL_TEST_OAUTH_SECRET", emu.client_secret)
    tenant = Tenant(
        id=emu.tenant_id,
        client_id=emu.client_id,
        credential=ClientSecretCredential(SecretRef(env="SYNCCTL_TEST_OAUTH_SECRET")),
        endpoints=Endpoints(authority=emu.authority, graph=emu.graph),
        ca_bundle=Path(emu.ca_bundle),
    )
    policy = dataclasses.replace(policy_for(tmp_path, "hr-sync", store), tenant=tenant)
    config = AzureBlobState(
        container=str(store.section["container"]), account_url=server.blob_endpoint
    )
    emu.reset_requests()
    backend = AzureBlobBackend(config, policy=policy)
    try:
        assert backend.location.startswith(f"azure blob {server.blob_endpoint}/")
        assert backend.load() is None
        held = backend.lock(operation="apply", timeout=0, ttl=TTL)
        backend.save(State(policy="hr-sync", managed=frozenset({"u1"})))
        held.release()
        loaded = backend.load()
        assert loaded is not None and loaded.managed == {"u1"} and loaded.tenant == emu.tenant_id
    finally:
        backend.close()
    token_requests = [r for r in emu.requests if r[1].endswith("/oauth2/v2.0/token")]
    assert len(token_requests) == 1  # one token for the whole run, not one per request

    # A wrong client secret: the sign-in failure, as one line naming the backend.
    monkeypatch.setenv("SYNCCTL_TEST_OAUTH_SECRET", "not-the-secret")
    backend = AzureBlobBackend(config, policy=policy)
    try:
        with pytest.raises(StateError) as error:
            backend.load()
        text = str(error.value)
        assert "\n" not in text and "not-the-secret" not in text
        assert text.startswith("policy hr-sync: state backend azure_blob (azure blob https://")
        assert "invalid_client" in text
    finally:
        backend.close()


def test_unreadable_documents_fail_in_one_line_never_as_an_empty_state(
    store: StateStore, policy: Policy, backends: list[StateBackend]
) -> None:
    backend = open_(backends, policy)
    for text, reason in (
        ("{not json", "state is not valid JSON"),
        ('{"format_version": 99, "policy": "hr-sync"}', "written by a newer syncctl"),
    ):
        store.write_raw("hr-sync", TENANT, text)
        with pytest.raises(StateError, match=reason) as error:
            backend.load()
        assert_one_line(error, "hr-sync")
        with pytest.raises(StateError):
            backend.list_states()
