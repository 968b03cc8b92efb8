"""Loading builds the frozen model: defaults, resolved paths, secrets as references."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.errors import PolicyError
from syncctl.policy import check_policies, explain, load_policies, load_policy
from syncctl.policy.defaults import DEFAULT_GROUP_ATTRIBUTES, DEFAULT_USER_ATTRIBUTES
from syncctl.policy.model import (
    ApplyMode,
    AttributeMapping,
    CertificateCredential,
    ClientSecretCredential,
    Cloud,
    Deletion,
    DeletionAction,
    Endpoints,
    FederatedTokenCredential,
    FilterClause,
    FilterOp,
    GroupSelector,
    ManagedIdentityCredential,
    PluginTarget,
    ScimTarget,
    SecretRef,
    SqliteTarget,
    Threshold,
    WritebackMode,
)

MINIMAL = """\
version: 1
name: {name}
tenant:
  id: contoso.onmicrosoft.com
  client_id: 3f0c4d2e-8b1a-4c55-9d7e-1a2b3c4d5e6f
  credential:
{credential}
source:
  scope_groups: [Password Manager Users]
target:
{target}
{extra}"""


def write(
    directory: Path,
    name: str = "minimal",
    *,
    credential: str = "    client_secret: {env: APP_SECRET}",
    target: str = "  type: sqlite\n  path: data/app.db",
    extra: str = "",
    filename: str | None = None,
) -> Path:
    path = directory / (filename or f"{name}.yaml")
    path.write_text(
        MINIMAL.format(name=name, credential=credential, target=target, extra=extra),
        encoding="utf-8",
    )
    return path


def test_minimal_policy_gets_every_default(tmp_path: Path) -> None:
    path = write(tmp_path)

    policy = load_policy(path)

    assert policy.path == path.absolute()
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.tenant.cloud is Cloud.GLOBAL
    assert policy.tenant.endpoints is None
    assert policy.tenant.credential == ClientSecretCredential(SecretRef(env="APP_SECRET"))
    assert policy.source.nested and policy.source.skip_empty_groups
    assert not policy.source.include_guests and not policy.source.include_disabled
    assert policy.source.filters == () and policy.source.groups == ()
    assert policy.target == SqliteTarget(path=tmp_path / "data" / "app.db")
    assert policy.mappings.user.attributes == DEFAULT_USER_ATTRIBUTES
    assert policy.mappings.group.attributes == DEFAULT_GROUP_ATTRIBUTES
    assert policy.deletion == Deletion()
    assert policy.deletion.max_deletes == Threshold(percent=10.0)
    assert policy.state.path == tmp_path / ".syncctl" / "minimal.state.json"
    assert policy.writeback is None


def test_listed_attributes_replace_the_defaults_for_that_kind_only(tmp_path: Path) -> None:
    extra = """\
mappings:
  user:
    match: [userName]
    attributes:
      userName: "[userPrincipalName]"
      nickName: {value: "ToLower([mailNickname])", default: "anon", apply: on_create}
"""
    policy = load_policy(write(tmp_path, extra=extra))

    assert policy.mappings.user.attributes == (
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("nickName", "ToLower([mailNickname])", "anon", ApplyMode.ON_CREATE),
    )
    assert policy.mappings.user.match == ("userName",)
    assert policy.mappings.group.attributes == DEFAULT_GROUP_ATTRIBUTES


@pytest.mark.parametrize(
    ("credential", "expected"),
    [
        (
            "    client_secret: {file: secrets/app}",
            ClientSecretCredential(SecretRef(file=Path("secrets/app"))),
        ),
        (
            "    certificate: {path: app.pem, password: {env: PW}}",
            CertificateCredential(Path("app.pem"), SecretRef(env="PW")),
        ),
        ("    certificate: {path: /abs/app.pfx}", CertificateCredential(Path("/abs/app.pfx"))),
        (
            "    federated_token: {file: token.jwt}",
            FederatedTokenCredential(file=Path("token.jwt")),
        ),
        ("    federated_token: {env: ID_TOKEN}", FederatedTokenCredential(env="ID_TOKEN")),
        (
            "    federated_token: {github_actions: {}}",
            FederatedTokenCredential(github_actions=True),
        ),
        (
            "    federated_token: {azure_pipelines: {service_connection_id: sc-1}}",
            FederatedTokenCredential(azure_pipelines_service_connection_id="sc-1"),
        ),
        ("    managed_identity: {}", ManagedIdentityCredential()),
        (
            "    managed_identity: {client_id: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d}",
            ManagedIdentityCredential("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"),
        ),
    ],
)
def test_every_credential_kind_builds_with_paths_resolved(
    tmp_path: Path, credential: str, expected: object
) -> None:
    policy = load_policy(write(tmp_path, credential=credential))

    built = policy.tenant.credential
    assert type(built) is type(expected)
    # Relative paths are resolved against the policy's directory; absolute ones are kept.
    for field in ("path", "file"):
        want = getattr(expected, field, None)
        if isinstance(want, Path):
            assert getattr(built, field) == (tmp_path / want if not want.is_absolute() else want)
    if isinstance(expected, ClientSecretCredential):
        assert isinstance(built, ClientSecretCredential)
        assert built.secret.file == tmp_path / "secrets" / "app"
    elif isinstance(expected, CertificateCredential):
        assert isinstance(built, CertificateCredential)
        assert built.password == expected.password
    else:
        for field in (
            "env",
            "github_actions",
            "azure_pipelines_service_connection_id",
            "client_id",
        ):
            assert getattr(built, field, None) == getattr(expected, field, None)


def test_scim_targets_build_with_token_or_oauth(tmp_path: Path) -> None:
    token = load_policy(
        write(
            tmp_path,
            "with-token",
            target="  type: scim\n  url: https://vault.example.com/scim/v2/\n"
            "  token: {file: token.txt}\n  ca_bundle: ca.pem",
        )
    )
    oauth = load_policy(
        write(
            tmp_path,
            "with-oauth",
            target="  type: scim\n  url: http://127.0.0.1:8080/scim\n  oauth:\n"
            "    token_url: https://idp.example.com/token\n    client_id: sync\n"
            "    client_secret: {env: OAUTH_SECRET}\n    scope: scim",
        )
    )

    assert token.target == ScimTarget(
        url="https://vault.example.com/scim/v2",
        token=SecretRef(file=tmp_path / "token.txt"),
        ca_bundle=tmp_path / "ca.pem",
    )
    assert isinstance(oauth.target, ScimTarget) and oauth.target.oauth is not None
    assert oauth.target.oauth.client_secret == SecretRef(env="OAUTH_SECRET")
    assert oauth.target.oauth.scope == "scim"
    assert oauth.target.token is None


def test_plugin_target_keeps_its_options(tmp_path: Path) -> None:
    path = write(tmp_path, target="  type: ldap\n  url: ldaps://x\n  depth: 3")

    result = check_policies([path])

    assert result.errors == []
    assert [d.severity for d in result.diagnostics] == ["warning"]
    assert "no installed plugin provides it" in result.diagnostics[0].message
    assert result.policies[0].policy.target == PluginTarget(
        "ldap", {"depth": 3, "url": "ldaps://x"}
    )


def test_source_deletion_state_and_tenant_options(tmp_path: Path) -> None:
    extra = """\
state:
  path: /var/lib/syncctl/state.json
deletion:
  out_of_scope: delete
  delete_after: 2w
  groups: ignore
  max_deletes: 0
  max_disables: "2.5%"
  protected: [breakglass@contoso.com]
"""
    path = write(tmp_path, extra=extra)
    text = path.read_text().replace(
        "source:\n  scope_groups: [Password Manager Users]\n",
        "  cloud: china\n"
        "  endpoints: {authority: 'https://login.example.cn/', graph: 'https://graph.example.cn'}\n"
        "  ca_bundle: certs/proxy.pem\n"
        "source:\n"
        "  scope_groups: [Password Manager Users, 0b7e3c1d-2a4f-4e5b-9c6d-7e8f9a0b1c2d]\n"
        "  nested: false\n  include_guests: true\n  include_disabled: true\n"
        "  skip_empty_groups: false\n"
        "  filters:\n"
        "    - - {attribute: country, op: in, value: [DE, FR]}\n"
        "      - {attribute: accountEnabled, op: is_true}\n"
        "    - - {attribute: mail, op: regex_match, value: '@contoso\\.com$'}\n"
        "  groups: [Vault Admins, 0b7e3c1d-2a4f-4e5b-9c6d-7e8f9a0b1c2d, {match: '^PM-'}]\n",
    )
    path.write_text(text)

    policy = load_policy(path)

    assert policy.tenant.cloud is Cloud.CHINA
    assert policy.tenant.endpoints == Endpoints(
        "https://login.example.cn", "https://graph.example.cn"
    )
    assert policy.tenant.ca_bundle == tmp_path / "certs" / "proxy.pem"
    assert policy.source.scope_groups == (
        "Password Manager Users",
        "0b7e3c1d-2a4f-4e5b-9c6d-7e8f9a0b1c2d",
    )
    assert (policy.source.nested, policy.source.include_guests, policy.source.include_disabled) == (
        False,
        True,
        True,
    )
    assert policy.source.skip_empty_groups is False
    assert policy.source.filters == (
        (
            FilterClause("country", FilterOp.IN, ("DE", "FR")),
            FilterClause("accountEnabled", FilterOp.IS_TRUE),
        ),
        (FilterClause("mail", FilterOp.REGEX_MATCH, "@contoso\\.com$"),),
    )
    assert policy.source.groups == (
        GroupSelector(name="Vault Admins"),
        GroupSelector(id="0b7e3c1d-2a4f-4e5b-9c6d-7e8f9a0b1c2d"),
        GroupSelector(pattern="^PM-"),
    )
    assert policy.state.path == Path("/var/lib/syncctl/state.json")
    assert policy.deletion.out_of_scope is DeletionAction.DELETE
    assert policy.deletion.delete_after == timedelta(weeks=2)
    assert policy.deletion.max_deletes == Threshold(count=0)
    assert policy.deletion.max_disables == Threshold(percent=2.5)
    assert policy.deletion.protected == ("breakglass@contoso.com",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("90m", timedelta(minutes=90)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
    ],
)
def test_durations(tmp_path: Path, text: str, expected: timedelta) -> None:
    policy = load_policy(write(tmp_path, extra=f"deletion: {{delete_after: {text}}}\n"))

    assert policy.deletion.delete_after == expected


@pytest.mark.parametrize(("text", "limit"), [('"0%"', 0), ('"100%"', 200), ('"5%"', 10), ("7", 7)])
def test_thresholds(tmp_path: Path, text: str, limit: int) -> None:
    policy = load_policy(write(tmp_path, extra=f"deletion: {{max_deletes: {text}}}\n"))

    assert policy.deletion.max_deletes.limit(200) == limit


def test_writeback_is_built(tmp_path: Path) -> None:
    extra = """\
writeback:
  mode: enforce
  attributes: {employeeId: "[employeeNumber]"}
  passwords:
    - {user: svc@contoso.com, secret: {file: pw.txt}}
"""
    path = write(tmp_path, extra=extra)

    result = check_policies([path])

    assert result.errors == []
    assert result.diagnostics == []  # acted on now: no "reserved" warning
    writeback = result.policies[0].policy.writeback
    assert writeback is not None and writeback.mode is WritebackMode.ENFORCE
    assert writeback.attributes == (AttributeMapping("employeeId", "[employeeNumber]"),)
    assert writeback.passwords[0].secret == SecretRef(file=tmp_path / "pw.txt")
    assert writeback.passwords[0].mode is WritebackMode.REPORT


def test_validation_never_reads_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_SECRET", raising=False)
    path = write(tmp_path, credential="    client_secret: {file: does/not/exist}")

    policy = load_policy(path)

    assert isinstance(policy.tenant.credential, ClientSecretCredential)
    assert not (tmp_path / "does").exists()


def test_directories_are_read_non_recursively_and_sorted_by_name(tmp_path: Path) -> None:
    write(tmp_path, "zulu", filename="a.yaml")
    write(tmp_path, "alpha", filename="b.yml")
    (tmp_path / "notes.txt").write_text("not a policy")
    nested = tmp_path / "nested"
    nested.mkdir()
    write(nested, "nested-policy")

    policies = load_policies([tmp_path])

    assert [p.name for p in policies] == ["alpha", "zulu"]


def test_the_same_file_twice_is_loaded_once(tmp_path: Path) -> None:
    path = write(tmp_path)

    assert [p.name for p in load_policies([tmp_path, path])] == ["minimal"]


def test_all_problems_of_all_files_come_at_once(tmp_path: Path) -> None:
    write(tmp_path, "one", extra="deletion: {max_delete: 1}\n")
    write(tmp_path, "two", target="  type: sqlite")
    write(tmp_path, "three")

    with pytest.raises(PolicyError) as caught:
        load_policies([tmp_path])

    messages = [str(d) for d in caught.value.diagnostics]
    assert len(messages) == 2
    assert "unknown key 'max_delete' in deletion (did you mean 'max_deletes'?)" in messages[0]
    assert "target: missing required key 'path'" in messages[1]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.yaml", "no such file or directory"),
        (lambda d: d, "no policy files (*.yaml, *.yml) in this directory"),
    ],
)
def test_paths_without_policies_are_one_clear_error(
    tmp_path: Path, setup: object, message: str
) -> None:
    assert callable(setup)
    target = setup(tmp_path)

    with pytest.raises(PolicyError) as caught:
        load_policies([target])

    assert [str(d) for d in caught.value.diagnostics] == [f"{target}: error: {message}"]


def test_unreadable_file_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root here, so permissions cannot make a file unreadable: simulate the OS error.
    path = write(tmp_path)
    original = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied")
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)

    result = check_policies([path])

    assert [str(d) for d in result.diagnostics] == [
        f"{path}: error: cannot read file: Permission denied"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty (expected a policy mapping)"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00",
            "not a text file (contains NUL bytes); expected a YAML policy",
        ),
        (b"name: caf\xe9\n", "not UTF-8 text; expected a YAML policy"),
        (
            b"just a string\n",
            "a policy must be a mapping of keys (version, name, tenant, ...), found a single value",
        ),
    ],
)
def test_junk_files_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "junk.yaml"
    path.write_bytes(content)

    result = check_policies([path])

    assert len(result.diagnostics) == 1
    assert result.diagnostics[0].message == message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())

    assert load_policy(path).name == "minimal"


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=999_999), st.sampled_from("smhdw"))
def test_any_valid_duration_loads_and_explains_to_the_same_span(amount: int, unit: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        policy = load_policy(
            write(Path(directory), extra=f"deletion: {{delete_after: {amount}{unit}}}\n")
        )
        seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
        assert policy.deletion.delete_after == timedelta(seconds=seconds)
        shown = explain(policy)["deletion"]["delete_after"]
        again = load_policy(
            write(Path(directory), "again", extra=f"deletion: {{delete_after: {shown}}}\n")
        )
        assert again.deletion.delete_after == policy.deletion.delete_after


@settings(max_examples=60, deadline=None)
@given(st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False))
def test_any_percentage_from_0_to_100_is_accepted(percent: Decimal) -> None:
    with tempfile.TemporaryDirectory() as directory:
        policy = load_policy(
            write(Path(directory), extra=f'deletion: {{max_disables: "{percent}%"}}\n')
        )
        assert policy.deletion.max_disables == Threshold(percent=float(percent))


@settings(max_examples=60, deadline=None)
@given(st.decimals(min_value=Decimal("100.01"), max_value=10**6, places=2))
def test_percentages_over_100_are_refused(percent: Decimal) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), extra=f'deletion: {{max_disables: "{percent}%"}}\n')
        errors = check_policies([path]).errors
        assert len(errors) == 1 and errors[0].message.startswith("deletion.max_disables: must be")


def test_match_is_checked_against_the_default_mappings_too(tmp_path: Path) -> None:
    path = write(tmp_path, extra="mappings:\n  user: {match: [userName, nickName]}\n")

    errors = check_policies([path]).errors

    assert [str(e) for e in errors] == [
        f"{path}:14:28: error: mappings.user.match: 'nickName' is not a mapped attribute"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            'mappings:\n  user:\n    attributes:\n      userName: "[userPrincipalName]"\n'
            '      employeeNumber: "[employeeId]"\n'
            'writeback:\n  attributes: {employeeId: "[employeeNumber]"}\n',
            "writeback.attributes.employeeId: writes Entra's employeeId from the target's "
            "employeeNumber, which mappings.user.attributes.employeeNumber sets from "
            "[employeeId] on every run",
        ),
        (
            "writeback:\n  attributes:\n"
            '    mobilePhone: "[phoneNumbers[type eq \\"mobile\\"].value"\n',
            "unterminated attribute",
        ),
    ],
)
def test_writeback_mistakes_are_errors(tmp_path: Path, extra: str, message: str) -> None:
    result = check_policies([write(tmp_path, extra=extra)])
    assert any(message in str(d) for d in result.errors), [str(d) for d in result.diagnostics]


def test_writeback_reads_scim_paths_and_an_on_create_mapping_does_not_loop(tmp_path: Path) -> None:
    extra = """\
mappings:
  user:
    attributes:
      userName: "[userPrincipalName]"
      employeeNumber: {value: "[employeeId]", apply: on_create}
writeback:
  attributes:
    employeeId: "[employeeNumber]"
    mobilePhone: '[phoneNumbers[type eq "mobile"].value]'
    officeLocation: "[urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department]"
"""
    result = check_policies([write(tmp_path, extra=extra)])
    assert result.errors == [], [str(d) for d in result.diagnostics]


def test_graph_mappings_may_not_use_scim_paths(tmp_path: Path) -> None:
    extra = 'mappings:\n  user:\n    attributes:\n      userName: "[a:b]"\n'
    result = check_policies([write(tmp_path, extra=extra)])
    assert any("is not a Microsoft Graph property name" in str(d) for d in result.errors)
