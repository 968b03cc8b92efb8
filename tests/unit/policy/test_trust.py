"""``plan --trusted``: which policy edits keep a pull request away from the credentials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncctl.errors import SyncctlError
from syncctl.policy import load_policy
from syncctl.policy.model import Policy
from syncctl.policy.trust import (
    NO_TRUSTED_COPY,
    credential_fields,
    load_trusted,
    untrusted_fields,
)

POLICY = """\
version: 1
name: vault
tenant:
  id: contoso.onmicrosoft.com
  client_id: 3f0c4d2e-8b1a-4c55-9d7e-1a2b3c4d5e6f
  cloud: global
  credential:
    client_secret: {env: APP_SECRET}
  endpoints:
    authority: https://login.microsoftonline.com
    graph: https://graph.microsoft.com
  ca_bundle: certs/corp.pem
source:
  scope_groups: [Password Manager Users]
target:
  type: scim
  url: https://vault.example.com/scim/v2
  token: {file: secrets/token}
mappings:
  user:
    attributes:
      userName: "[userPrincipalName]"
deletion:
  max_deletes: 5
"""

OFFLINE = """\
version: 1
name: offline
tenant:
  id: contoso.onmicrosoft.com
  snapshot: snapshot.json
source:
  scope_groups: [Password Manager Users]
target:
  type: sqlite
  path: data/app.db
"""

OAUTH_TARGET = """\
target:
  type: scim
  url: https://vault.example.com/scim/v2
  oauth:
    token_url: https://vault.example.com/oauth2/token
    client_id: syncctl
    client_secret: {env: OAUTH_SECRET}
    scope: scim.write
"""


def checkout(root: Path, text: str = POLICY, file: str = "vault.yaml") -> Policy:
    """A policy in its own checkout directory, with the files beside it that it names."""
    (root / "certs").mkdir(parents=True, exist_ok=True)
    (root / "certs" / "corp.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    (root / "snapshot.json").write_text("{}")
    (root / file).write_text(text, encoding="utf-8")
    return load_policy(root / file)


@pytest.fixture
def base(tmp_path: Path) -> Policy:
    return checkout(tmp_path / "base")


def edited(tmp_path: Path, old: str, new: str, text: str = POLICY) -> Policy:
    assert old in text
    return checkout(tmp_path / "pr" / "deeper", text.replace(old, new, 1))


def test_an_unchanged_copy_in_another_directory_is_trusted(tmp_path: Path, base: Policy) -> None:
    pr = checkout(tmp_path / "elsewhere" / "pr")

    assert pr.target != base.target  # the resolved paths differ ...
    assert untrusted_fields(pr, [base]) == []  # ... but they are the same as written


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            "authority: https://login.microsoftonline.com",
            "authority: https://evil.example",
            "tenant.endpoints.authority",
        ),
        (
            "graph: https://graph.microsoft.com",
            "graph: https://evil.example",
            "tenant.endpoints.graph",
        ),
        ("url: https://vault.example.com/scim/v2", "url: https://evil.example/scim", "target.url"),
        ("token: {file: secrets/token}", "token: {file: ~/.ssh/id_rsa}", "target.token"),
        ("token: {file: secrets/token}", "token: {env: OTHER_SECRET}", "target.token"),
        (
            "client_secret: {env: APP_SECRET}",
            "client_secret: {env: APPLY_SECRET}",
            "tenant.credential.client_secret",
        ),
        ("ca_bundle: certs/corp.pem", "ca_bundle: /tmp/attacker.pem", "tenant.ca_bundle"),
        ("id: contoso.onmicrosoft.com", "id: fabrikam.onmicrosoft.com", "tenant.id"),
        (
            "client_id: 3f0c4d2e-8b1a-4c55-9d7e-1a2b3c4d5e6f",
            "client_id: 00000000-8b1a-4c55-9d7e-1a2b3c4d5e6f",
            "tenant.client_id",
        ),
        ("cloud: global", "cloud: china", "tenant.cloud"),
        (
            "  token: {file: secrets/token}",
            "  token: {file: secrets/token}\n  ca_bundle: evil.pem",
            "target.ca_bundle",
        ),
        ("version: 1\n", "version: 1\nstate:\n  path: /home/runner/.bashrc\n", "state.path"),
    ],
)
def test_a_changed_credential_bearing_field_is_named(
    tmp_path: Path, base: Policy, old: str, new: str, field: str
) -> None:
    pr = edited(tmp_path, old, new)

    assert untrusted_fields(pr, [base]) == [field]


def test_a_different_credential_kind_is_refused(tmp_path: Path, base: Policy) -> None:
    pr = edited(tmp_path, "client_secret: {env: APP_SECRET}", "managed_identity: {}")

    assert untrusted_fields(pr, [base]) == [
        "tenant.credential",
        "tenant.credential.client_secret",
        "tenant.credential.managed_identity.client_id",
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("[Password Manager Users]", "[Everyone]"),
        ('userName: "[userPrincipalName]"', 'userName: "[mail]"'),
        ("max_deletes: 5", "max_deletes: 500"),
    ],
)
def test_what_a_pull_request_is_for_may_change(
    tmp_path: Path, base: Policy, old: str, new: str
) -> None:
    assert untrusted_fields(edited(tmp_path, old, new), [base]) == []


def test_oauth_fields_are_compared(tmp_path: Path) -> None:
    old_target = POLICY[POLICY.index("target:") : POLICY.index("mappings:")]
    text = POLICY.replace(old_target, OAUTH_TARGET)
    trusted = checkout(tmp_path / "base", text)

    for old, new, field in [
        (
            "token_url: https://vault.example.com/oauth2/token",
            "token_url: https://evil.example/t",
            "target.oauth.token_url",
        ),
        ("client_id: syncctl", "client_id: other", "target.oauth.client_id"),
        ("{env: OAUTH_SECRET}", "{env: OTHER}", "target.oauth.client_secret"),
        ("scope: scim.write", "scope: admin", "target.oauth.scope"),
    ]:
        pr = checkout(tmp_path / f"pr-{field}", text.replace(old, new))
        assert untrusted_fields(pr, [trusted]) == [field]


def test_no_trusted_copy_is_refused(tmp_path: Path, base: Policy) -> None:
    pr = checkout(tmp_path / "pr", POLICY.replace("name: vault", "name: vault-new"))

    assert untrusted_fields(pr, [base]) == [NO_TRUSTED_COPY]
    assert untrusted_fields(pr, []) == [NO_TRUSTED_COPY]


def test_a_policy_without_credentials_is_never_refused(tmp_path: Path) -> None:
    trusted = checkout(tmp_path / "base", OFFLINE)
    pr = checkout(tmp_path / "pr", OFFLINE.replace("data/app.db", "/elsewhere/app.db"))

    assert untrusted_fields(pr, [trusted]) == []
    assert untrusted_fields(pr, []) == []


def test_a_secret_file_turned_into_a_symlink_out_of_the_checkout_is_refused(
    tmp_path: Path, base: Policy
) -> None:
    (tmp_path / "base" / "secrets").mkdir()
    (tmp_path / "base" / "secrets" / "token").write_text("t0k3n-from-ci")
    pr_root = tmp_path / "pr"
    pr = checkout(pr_root)
    (pr_root / "secrets").mkdir()
    key = tmp_path / "home" / ".ssh" / "id_rsa"
    key.parent.mkdir(parents=True)
    key.write_text("PRIVATE KEY")
    os.symlink(key, pr_root / "secrets" / "token")

    assert untrusted_fields(pr, [base]) == ["target.token"]


def test_a_ca_bundle_edited_beside_the_policy_is_refused(tmp_path: Path, base: Policy) -> None:
    pr_root = tmp_path / "pr"
    pr = checkout(pr_root)
    (pr_root / "certs" / "corp.pem").write_text("-----BEGIN CERTIFICATE-----\nEVIL\n")

    assert untrusted_fields(pr, [base]) == ["tenant.ca_bundle"]


def test_the_same_absolute_path_is_the_same_file(tmp_path: Path) -> None:
    text = POLICY.replace("{file: secrets/token}", "{file: /run/secrets/scim-token}")
    trusted = checkout(tmp_path / "base", text)

    assert untrusted_fields(checkout(tmp_path / "a" / "b" / "pr", text), [trusted]) == []


def test_federated_and_certificate_credentials(tmp_path: Path) -> None:
    federated = POLICY.replace(
        "client_secret: {env: APP_SECRET}",
        "federated_token: {file: /var/run/secrets/azure/tokens/azure-identity-token}",
    )
    trusted = checkout(tmp_path / "base", federated)
    pr = checkout(tmp_path / "pr", federated.replace("azure-identity-token", "other-token"))
    assert untrusted_fields(pr, [trusted]) == ["tenant.credential.federated_token.file"]

    certificate = POLICY.replace(
        "client_secret: {env: APP_SECRET}",
        "certificate: {path: app.pem, password: {env: CERT_PASSWORD}}",
    )
    trusted = checkout(tmp_path / "base2", certificate)
    pr = checkout(tmp_path / "pr2", certificate.replace("app.pem", "../../x.pem"))
    assert untrusted_fields(pr, [trusted]) == ["tenant.credential.certificate.path"]


def test_every_plugin_option_is_credential_bearing(tmp_path: Path) -> None:
    old_target = POLICY[POLICY.index("target:") : POLICY.index("mappings:")]
    plugin = "target:\n  type: ldap\n  server: ldaps://dir.example\n  bind: {env: LDAP_PW}\n"
    text = POLICY.replace(old_target, plugin)
    trusted = checkout(tmp_path / "base", text)
    pr = checkout(tmp_path / "pr", text.replace("ldaps://dir.example", "ldaps://evil.example"))

    assert untrusted_fields(pr, [trusted]) == ["target.server"]
    assert credential_fields(trusted)["target.bind.env"] == "LDAP_PW"


def test_writeback_passwords_are_compared(tmp_path: Path) -> None:
    text = POLICY + (
        "writeback:\n  passwords:\n"
        "    - {user: svc@contoso.com, secret: {env: SVC_PASSWORD}, mode: enforce}\n"
    )
    trusted = checkout(tmp_path / "base", text)
    pr = checkout(tmp_path / "pr", text.replace("svc@contoso.com", "admin@contoso.com"))

    assert untrusted_fields(pr, [trusted]) == ["writeback.passwords[0].user"]


def test_load_trusted_skips_broken_policies_and_finds_policies_dir(tmp_path: Path) -> None:
    checkout(tmp_path / "repo" / "policies")
    (tmp_path / "repo" / "policies" / "broken.yaml").write_text("version: [1\n")
    (tmp_path / "repo" / "README.md").write_text("docs")

    from_root = load_trusted(tmp_path / "repo")
    from_dir = load_trusted(tmp_path / "repo" / "policies")

    assert [p.name for p in from_root] == ["vault"]
    assert [p.name for p in from_dir] == ["vault"]


def test_load_trusted_needs_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file.yaml").write_text(POLICY)

    for path in (tmp_path / "file.yaml", tmp_path / "missing", tmp_path / ("x" * 300)):
        with pytest.raises(SyncctlError) as caught:
            load_trusted(path)
        assert str(caught.value).startswith(f"--trusted {path}: ")
        assert "\n" not in str(caught.value)
