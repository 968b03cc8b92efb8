"""What only the Blob backend's blobs do: where they sit in the container, large uploads
against a real Azurite, and errors in one line without the key (the contract suite covers the
rest)."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncctl.state.backend import StateBackend, open_backend
from syncctl.state.store import State, StateError
from tests.contract.state_store import StateStore, policy_for
from tests.servers.azurite import ACCOUNT_KEY, STATE_ENV, Azurite, free_port

TENANT = "contoso.onmicrosoft.com"
WRONG_KEY = "d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5MDE="


@pytest.fixture
def store(azure_blob_state_store: StateStore) -> Iterator[StateStore]:
    with azure_blob_state_store.environment():
        yield azure_blob_state_store


@pytest.fixture
def backends() -> Iterator[list[StateBackend]]:
    opened: list[StateBackend] = []
    yield opened
    for backend in opened:
        backend.close()


def open_(backends: list[StateBackend], tmp_path: Path, store: StateStore) -> StateBackend:
    backend = open_backend(policy_for(tmp_path, "hr-sync", store))
    backends.append(backend)
    return backend


def raw_blobs(azurite: Azurite, container: str) -> dict[str, tuple[str, int]]:
    """Every blob in the container: name -> (blob type, size)."""
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string()) as service:
        box = service.get_container_client(container)
        if not box.exists():
            return {}
        return {b.name: (str(b.blob_type), int(b.size)) for b in box.list_blobs()}


def test_a_40_mb_blob_is_one_block_blob_beside_the_state(
    azurite: Azurite, tmp_path: Path, store: StateStore, backends: list[StateBackend]
) -> None:
    container = store.section["container"]
    backend = open_(backends, tmp_path, store)
    assert backend.load_blob("slice-1") is None
    assert raw_blobs(azurite, container) == {}  # reading creates no container
    big = random.Random(5).randbytes(40 * 1024 * 1024)  # above the SDK's single-GET size
    name = "slice-" + hashlib.sha256(big).hexdigest()
    backend.save_blob(name, big)  # the first write creates the container
    backend.load()
    backend.save(State("hr-sync", frozenset({"u1"}), tenant=TENANT))
    assert raw_blobs(azurite, container) == {
        f"{TENANT}/hr-sync.blobs/{name}": ("BlobType.BLOCKBLOB", len(big)),
        f"{TENANT}/hr-sync.state.json": ("BlobType.BLOCKBLOB", raw_state_size(azurite, store)),
    }
    assert open_(backends, tmp_path, store).load_blob(name) == big
    backend.prune_blobs(())
    assert list(raw_blobs(azurite, container)) == [f"{TENANT}/hr-sync.state.json"]


def raw_state_size(azurite: Azurite, store: StateStore) -> int:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string()) as service:
        blob = service.get_blob_client(store.section["container"], f"{TENANT}/hr-sync.state.json")
        return int(blob.get_blob_properties().size)


def test_a_wrong_account_key_is_one_line_without_the_key(
    azurite: Azurite, tmp_path: Path, store: StateStore, backends: list[StateBackend]
) -> None:
    open_(backends, tmp_path, store).save_blob("slice-1", b"one")  # the container exists
    os.environ[STATE_ENV] = azurite.connection_string(WRONG_KEY)
    backend = open_(backends, tmp_path / "wrong", store)
    attempts: dict[str, Callable[[], object]] = {
        "cannot read blob slice-1": lambda: backend.load_blob("slice-1"),
        "cannot write blob slice-2": lambda: backend.save_blob("slice-2", b"two"),
    }
    for doing, attempt in attempts.items():
        with pytest.raises(StateError) as error:
            attempt()
        text = str(error.value)
        assert text.startswith("policy hr-sync: state backend azure_blob (azure blob http://")
        assert f"{doing}: HTTP 403" in text and "\n" not in text
        assert WRONG_KEY[:20] not in text and ACCOUNT_KEY[:20] not in text
    backend.prune_blobs(())  # best effort: no error, and nothing deleted
    os.environ[STATE_ENV] = azurite.connection_string()
    assert open_(backends, tmp_path, store).load_blob("slice-1") == b"one"


def test_an_unreachable_endpoint_is_one_line(
    tmp_path: Path, store: StateStore, backends: list[StateBackend]
) -> None:
    os.environ[STATE_ENV] = Azurite(free_port()).connection_string()  # nothing listens there
    backend = open_(backends, tmp_path, store)
    with pytest.raises(StateError) as error:
        backend.load_blob("slice-1")
    text = str(error.value)
    assert "cannot read blob slice-1: cannot reach the endpoint" in text and "\n" not in text
    assert ACCOUNT_KEY[:20] not in text
    backend.prune_blobs(())
