"""The file ``syncctl init`` writes, without Graph: every credential and target kind loads
and validates as written, keys in a fixed order, secrets only named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from syncctl.init.directory import GroupChoice
from syncctl.init.flow import Answers
from syncctl.init.writer import render_policy, scalar
from syncctl.policy import check_policies

GUID = "3f0c4d2e-8b1a-4c55-9d7e-1a2b3c4d5e6f"


def chosen(**changes: Any) -> Answers:
    values: dict[str, Any] = {
        "tenant": "contoso.onmicrosoft.com",
        "cloud": "global",
        "credential": {"interactive": {}},
        "credential_kind": "interactive",
        "client_id": GUID,
        "scope_groups": (GroupChoice("Password Manager Users", GUID),),
        "nested": False,
        "groups": (
            GroupChoice("Vault Admins", "0b7e3c1d-2a4f-4e5b-9c6d-7e8f9a0b1c2d", by_id=True),
        ),
        "deletion": {
            "out_of_scope": "ignore",
            "disabled": "disable",
            "soft_deleted": "delete",
            "hard_deleted": "delete",
        },
        "delete_after": None,
        "max_deletes": 0,
        "max_disables": "5%",
        "target": {"type": "sqlite", "path": "vault.db"},
        "name": "vault",
        "output": Path("vault.yaml"),
    }
    values.update(changes)
    return Answers(**values)


CREDENTIALS = {
    "interactive": {"interactive": {}},
    "client_secret": {"client_secret": {"env": "VAULT_SECRET"}},
    "certificate": {"certificate": {"path": "app.pem", "password": {"env": "PW"}}},
    "federated_token": {"federated_token": {"github_actions": {}}},
    "managed_identity": {"managed_identity": {}},
}


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_every_credential_kind_validates(tmp_path: Path, kind: str) -> None:
    (tmp_path / "app.pem").write_text("not checked offline\n", encoding="utf-8")
    answers = chosen(
        credential=CREDENTIALS[kind],
        credential_kind=kind,
        client_id=None if kind == "managed_identity" else GUID,
        output=tmp_path / "vault.yaml",
    )
    path = tmp_path / "vault.yaml"
    path.write_text(render_policy(answers, cwd=tmp_path, version="0"), encoding="utf-8")

    result = check_policies([path])

    assert result.errors == []
    assert [p.policy.name for p in result.policies] == ["vault"]
    assert (
        yaml.safe_load(path.read_text(encoding="utf-8"))["tenant"]["credential"]
        == (CREDENTIALS[kind])
    )


def test_the_choices_are_written_as_made(tmp_path: Path) -> None:
    answers = chosen(
        target={"type": "scim", "url": "https://vault.example.com/scim/v2", "token": {"env": "T"}},
        delete_after="2w",
    )
    text = render_policy(answers, cwd=tmp_path, version="0")
    policy = yaml.safe_load(text)

    assert list(policy) == ["version", "name", "tenant", "source", "target", "deletion"]
    # A name another group shares is written as the object id, with the name as a comment.
    assert "- 0b7e3c1d-2a4f-4e5b-9c6d-7e8f9a0b1c2d" in text and "# Vault Admins" in text
    assert policy["source"]["nested"] is False
    assert policy["deletion"] == {
        "out_of_scope": "ignore",
        "disabled": "disable",
        "soft_deleted": "delete",
        "hard_deleted": "delete",
        "delete_after": "2w",
        "max_deletes": 0,
        "max_disables": "5%",
    }
    assert policy["target"]["token"] == {"env": "T"}
    (tmp_path / "vault.yaml").write_text(text, encoding="utf-8")
    assert check_policies([tmp_path / "vault.yaml"]).errors == []


def test_paths_used_to_sign_in_are_written_relative_to_the_policy(tmp_path: Path) -> None:
    answers = chosen(
        credential={"certificate": {"path": "certs/app.pem"}},
        credential_kind="certificate",
        ca_bundle="ca.pem",
        output=Path("policies/vault.yaml"),
    )
    policy = yaml.safe_load(render_policy(answers, cwd=tmp_path, version="0"))

    assert policy["tenant"]["credential"]["certificate"]["path"] == "../certs/app.pem"
    assert policy["tenant"]["ca_bundle"] == "../ca.pem"
    assert policy["target"]["path"] == "vault.db"  # asked relative to the policy file


@pytest.mark.parametrize("value", ["yes", "10%", "a: b", "#x", "007", "plain"])
def test_scalars_read_back_as_written(value: str) -> None:
    assert yaml.safe_load(f"key: {scalar(value)}") == {"key": value}
