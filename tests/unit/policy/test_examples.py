"""The shipped examples validate and cover every target and credential kind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from syncctl.policy import check_policies
from syncctl.policy.model import (
    CertificateCredential,
    ClientSecretCredential,
    FederatedTokenCredential,
    ManagedIdentityCredential,
    PluginTarget,
    Policy,
    ScimTarget,
    SqliteTarget,
)

ROOT = Path(__file__).resolve().parents[3]


def copy_examples(tmp_path: Path) -> list[Path]:
    """Copies of policies/ (what runs offline) and examples/ (real tenants)."""
    copies = [tmp_path / "policies", tmp_path / "examples"]
    for copy in copies:
        shutil.copytree(ROOT / copy.name, copy)
    return copies


@pytest.fixture
def examples(tmp_path: Path) -> list[Policy]:
    result = check_policies(copy_examples(tmp_path))
    assert result.errors == [], [str(d) for d in result.errors]
    # The only warning allowed is the plugin example naming a plugin that is not installed.
    assert [(Path(d.location.file).name, d.severity) for d in result.diagnostics] == [
        ("plugin.yaml", "warning")
    ]
    return [loaded.policy for loaded in result.policies]


def test_every_example_validates_with_a_unique_name(examples: list[Policy]) -> None:
    files = sorted(p.name for d in ("policies", "examples") for p in (ROOT / d).glob("*.yaml"))

    assert len(examples) == len(files) >= 9
    assert len({policy.name for policy in examples}) == len(examples)


def test_the_default_directory_holds_only_what_runs_offline() -> None:
    """`syncctl plan` with no arguments reads policies/: nothing there may sign in anywhere."""
    (result,) = [check_policies([ROOT / "policies"])]
    assert result.errors == []
    assert [loaded.policy.name for loaded in result.policies] == ["demo"]
    assert all(loaded.policy.tenant.credential is None for loaded in result.policies)


def test_demo_is_offline_sqlite_with_the_promised_shape(examples: list[Policy]) -> None:
    demo = next(policy for policy in examples if policy.name == "demo")

    assert demo.tenant.credential is None
    assert demo.tenant.snapshot == demo.path.parent / "snapshots" / "demo.json"
    assert demo.target == SqliteTarget(path=demo.path.parent / ".syncctl" / "demo.db")
    assert demo.source.scope_groups == ("Password Manager Users",)
    assert [g.name or g.pattern for g in demo.source.groups] == ["Vault Admins", "^PM-"]
    targets = {m.target for m in demo.mappings.user.attributes}
    assert {"userName", "department", "employeeNumber"} <= targets
    assert any(m.apply == "on_create" for m in demo.mappings.user.attributes)
    assert demo.deletion.max_deletes.count is not None


def test_examples_cover_every_target_and_credential_kind(examples: list[Policy]) -> None:
    targets = {type(p.target) for p in examples}
    scim = [p.target for p in examples if isinstance(p.target, ScimTarget)]
    credentials = [p.tenant.credential for p in examples]
    federated = [c for c in credentials if isinstance(c, FederatedTokenCredential)]
    identities = [c for c in credentials if isinstance(c, ManagedIdentityCredential)]

    assert targets == {SqliteTarget, ScimTarget, PluginTarget}
    assert any(t.token is not None for t in scim) and any(t.oauth is not None for t in scim)
    assert any(isinstance(c, ClientSecretCredential) for c in credentials)
    assert any(isinstance(c, CertificateCredential) for c in credentials)
    assert any(c.file is not None for c in federated)
    assert any(c.env is not None for c in federated)
    assert any(c.github_actions for c in federated)
    assert any(c.azure_pipelines_service_connection_id is not None for c in federated)
    assert {c.client_id is None for c in identities} == {True, False}


def test_validation_needs_no_network_and_no_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("validation tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    copies = copy_examples(tmp_path)

    result = check_policies(copies)

    assert result.errors == []
    assert not any((copy / "secrets").exists() for copy in copies)  # never needed
