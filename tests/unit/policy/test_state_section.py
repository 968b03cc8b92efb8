"""The policy's ``state`` section: each backend's keys, and a missing client library."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from syncctl.policy import check_policies, load_policy
from syncctl.policy.model import AzureBlobState, PostgresState, SecretRef

BASE = {
    "version": 1,
    "name": "vault",
    "tenant": {"id": "contoso.onmicrosoft.com", "snapshot": "snapshot.json"},
    "source": {"scope_groups": ["Users"]},
    "target": {"type": "sqlite", "path": "directory.db"},
}


def write(tmp_path: Path, state: dict[str, object]) -> Path:
    (tmp_path / "snapshot.json").write_text("{}")
    path = tmp_path / "vault.yaml"
    path.write_text(yaml.safe_dump({**BASE, "state": state}))
    return path


def errors(path: Path) -> list[str]:
    return [d.message for d in check_policies([path]).errors]


def test_each_backend_builds_its_model(tmp_path: Path) -> None:
    pg = write(tmp_path, {"backend": "postgres", "dsn": {"env": "STATE_DSN"}})
    assert load_policy(pg).state.backend == PostgresState(dsn=SecretRef(env="STATE_DSN"))
    blob = write(
        tmp_path,
        {
            "backend": "azure_blob",
            "container": "syncctl-state",
            "account_url": "https://a.blob.core.windows.net",
        },
    )
    assert load_policy(blob).state.backend == AzureBlobState(
        container="syncctl-state", account_url="https://a.blob.core.windows.net"
    )
    assert load_policy(write(tmp_path, {})).state.backend is None


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"backend": "postgres"}, "backend postgres needs dsn"),
        ({"backend": "postgres", "dsn": "postgresql://u:pw@db/x"}, "secret"),
        (
            {"backend": "azure_blob", "account_url": "https://a.blob.core.windows.net"},
            "needs container",
        ),
        (
            {"backend": "azure_blob", "container": "c-1"},
            "exactly one of account_url or connection_string",
        ),
        (
            {"backend": "azure_blob", "container": "Bad_Name", "connection_string": {"env": "X"}},
            "container name",
        ),
        ({"backend": "local", "dsn": {"env": "X"}}, "state.dsn: not used by backend local"),
        (
            {"backend": "azure_blob", "container": "c-1", "account_url": "http://blob.example.com"},
            "https",
        ),
        ({"backend": "sqlite"}, "backend"),
    ],
)
def test_a_wrong_state_section_is_named(
    tmp_path: Path, state: dict[str, object], message: str
) -> None:
    found = errors(write(tmp_path, state))
    assert any(message in line for line in found), found


@pytest.mark.parametrize(
    ("state", "module", "extra"),
    [
        ({"backend": "postgres", "dsn": {"env": "X"}}, "psycopg", "postgres"),
        (
            {"backend": "azure_blob", "container": "c-1", "connection_string": {"env": "X"}},
            "azure.storage.blob",
            "azure",
        ),
    ],
)
def test_a_backend_whose_extra_is_missing_fails_validation_with_the_pip_command(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    state: dict[str, object],
    module: str,
    extra: str,
) -> None:
    path = write(tmp_path, state)
    assert errors(path) == []
    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    assert any(f"pip install 'syncctl[{extra}]'" in line for line in errors(path))
