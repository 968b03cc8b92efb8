"""What only the local backend's blobs do: files beside the state file, written atomically,
stored byte for byte (the shared contract suite covers the rest)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncctl import redaction
from syncctl.state import State, StateError
from syncctl.state.backend import check_blob_name
from syncctl.state.local import LocalBackend

TENANT = "contoso.onmicrosoft.com"


@pytest.fixture
def no_secrets() -> Iterator[None]:
    redaction.forget_all()
    yield
    redaction.forget_all()


def test_blobs_are_files_in_a_directory_beside_the_state_file(tmp_path: Path) -> None:
    # A state path of the policy's own choosing: the blobs follow it, named by the policy.
    backend = LocalBackend(tmp_path / "kept" / "mine.json", policy="vault", tenant=TENANT)
    assert backend.load_blob("slice-1") is None
    assert not (tmp_path / "kept").exists()  # reading creates nothing
    backend.save_blob("slice-1", b"one")
    backend.save_blob("slice-1", b"one, again")
    assert os.listdir(tmp_path / "kept") == ["vault.blobs"]
    assert os.listdir(tmp_path / "kept" / "vault.blobs") == ["slice-1"]  # no temp file left
    assert (tmp_path / "kept" / "vault.blobs" / "slice-1").read_bytes() == b"one, again"


def test_blob_bytes_are_stored_as_given_never_masked(tmp_path: Path, no_secrets: None) -> None:
    secret = redaction.remember("blob-Secret-4711")
    data = b"\x00" + secret.encode() + b"\r\n\xff"
    backend = LocalBackend(tmp_path / "vault.state.json", policy="vault", tenant=TENANT)
    backend.save_blob("plan-1", data)
    assert backend.load_blob("plan-1") == data


def test_an_unusable_blob_directory_is_a_one_line_state_error(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "vault.state.json", policy="vault", tenant=TENANT)
    (tmp_path / "vault.blobs").write_text("a file where the directory belongs")
    attempts: list[Callable[[], object]] = [
        lambda: backend.load_blob("slice-1"),
        lambda: backend.save_blob("s", b""),
    ]
    for attempt in attempts:
        with pytest.raises(StateError) as error:
            attempt()
        assert str(error.value).startswith(str(tmp_path / "vault.blobs"))
        assert "cannot" in str(error.value) and "\n" not in str(error.value)
    backend.prune_blobs(())  # best effort: no error, nothing removed
    assert (tmp_path / "vault.blobs").is_file()
    assert backend.load() is None
    backend.save(State("vault", frozenset({"id-1"})))  # the state itself is unaffected
    assert backend.load() == State("vault", frozenset({"id-1"}), tenant=TENANT)


def test_a_blob_that_is_a_directory_is_an_error_not_missing(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "vault.state.json", policy="vault", tenant=TENANT)
    (tmp_path / "vault.blobs" / "slice-1").mkdir(parents=True)
    with pytest.raises(StateError, match="cannot read blob"):
        backend.load_blob("slice-1")


def test_prune_leaves_files_that_are_no_blobs(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "vault.state.json", policy="vault", tenant=TENANT)
    backend.save_blob("slice-1", b"old")
    backend.save_blob("slice-2", b"new")
    blobs = tmp_path / "vault.blobs"
    # A writer's temp file (it may be renamed into place any moment) and a hand-made file.
    (blobs / ".slice-3.k2j4.tmp").write_bytes(b"half")
    (blobs / "README").write_text("notes")
    backend.prune_blobs(["slice-2"])
    assert sorted(os.listdir(blobs)) == [".slice-3.k2j4.tmp", "README", "slice-2"]


@pytest.mark.parametrize("name", ["slice-" + "0" * 64, "a", "x" * 100, "plan-1.zst", "a-b.c"])
def test_valid_blob_names(name: str) -> None:
    assert check_blob_name(name) == name
