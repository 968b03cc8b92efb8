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


@pytest.fixture
def examples(tmp_path: Path) -> list[Policy]:
    copy = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", copy)
    snapshot = copy / "snapshots" / "demo.json"
    if not snapshot.exists():  # written by the snapshot work; validate only needs it to exist
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text("{}")
    result = check_policies([copy])
    assert result.errors == [], [str(d) for d in result.errors]
    # The only warning allowed is the plugin example naming a plugin that is not installed.
    assert [(Path(d.location.file).name, d.severity) for d in result.diagnostics] == [
        ("plugin.yaml", "warning")
    ]
    return [loaded.policy for loaded in result.policies]


def test_every_example_validates_with_a_unique_name(examples: list[Policy]) -> None:
    files = sorted(p.name for p in (ROOT / "policies").glob("*.yaml"))

    assert len(examples) == len(files) >= 9
    assert len({policy.name for policy in examples}) == len(examples)


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
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    (tmp_path / "policies" / "snapshots").mkdir(exist_ok=True)
    (tmp_path / "policies" / "snapshots" / "demo.json").touch()

    result = check_policies([tmp_path / "policies"])

    assert result.errors == []
    assert not (tmp_path / "policies" / "secrets").exists()  # secret files are never needed
