"""The interactive sign-in's token cache (where it lives, who may read it, what a damaged
one says) and the delegated scopes a policy asks for."""

from __future__ import annotations

import base64
import dataclasses
import json
import stat
from pathlib import Path

import httpx
import pytest

from syncctl.errors import SignInRequired
from syncctl.policy.model import (
    AttributeMapping,
    Cloud,
    InteractiveCredential,
    PasswordWriteback,
    SecretRef,
    Tenant,
    Writeback,
    WritebackMode,
)
from syncctl.source import permissions
from syncctl.source.auth import TokenProvider
from syncctl.source.token_cache import (
    FILE_PROTECTION,
    PrivateFilePersistence,
    SignInRecord,
    TokenCacheStore,
    cache_dir,
    cache_stem,
)
from syncctl.source.token_claims import token_scopes
from tests.unit.source.policies import make_policy

CLIENT = "11111111-2222-3333-4444-555555555555"
TENANT = Tenant(id="Contoso.onmicrosoft.com", client_id=CLIENT, credential=InteractiveCredential())


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's desktop keyring must not change what these tests see.
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "syncctl" / "msal"
    # The XDG rule: a relative value is ignored, as is an empty one.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert cache_dir() == Path.home() / ".cache" / "syncctl" / "msal"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_dir() == Path.home() / ".cache" / "syncctl" / "msal"


def test_one_file_per_tenant_and_client(tmp_path: Path) -> None:
    store = TokenCacheStore(TENANT, directory=tmp_path)
    assert store.path == tmp_path / f"contoso.onmicrosoft.com-{CLIENT}.bin"
    assert store.record_path == tmp_path / f"contoso.onmicrosoft.com-{CLIENT}.json"
    # Nothing but the tenant's own characters reaches the file name.
    assert cache_stem("../evil/x", "a b") == ".._evil_x-a_b"


def test_file_is_private_from_the_first_byte(tmp_path: Path) -> None:
    directory = tmp_path / "msal"
    store = TokenCacheStore(TENANT, directory=directory)
    store.open().modify  # noqa: B018 - building the cache creates the directory
    assert store.protection == FILE_PROTECTION
    assert not store.encrypted
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    persistence = store.persistence()
    assert isinstance(persistence, PrivateFilePersistence)
    store.path.write_text("{}", encoding="utf-8")
    store.path.chmod(0o644)  # an older, looser file is tightened before it is written
    persistence.save('{"AccessToken": {}}')
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.path.read_text(encoding="utf-8") == '{"AccessToken": {}}'


def test_loose_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "msal"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    TokenCacheStore(TENANT, directory=directory).persistence()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_readable_file_is_refused(tmp_path: Path) -> None:
    store = TokenCacheStore(TENANT, directory=tmp_path / "msal")
    store.persistence().save("{}")
    store.path.chmod(0o640)
    with pytest.raises(SignInRequired) as caught:
        store.open()
    assert str(caught.value) == (
        f"token cache {store.path} is readable by others (mode 0640) and was not trusted; "
        'run "syncctl logout POLICY" and then "syncctl login POLICY"'
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [("{not json", "not an MSAL token cache"), (b"\xff\xfe", "not UTF-8 text")],
)
def test_damaged_cache_is_one_line(tmp_path: Path, content: str | bytes, why: str) -> None:
    store = TokenCacheStore(TENANT, directory=tmp_path / "msal")
    store.persistence().save("{}")
    if isinstance(content, bytes):
        store.path.write_bytes(content)
    else:
        store.path.write_text(content, encoding="utf-8")
    with pytest.raises(SignInRequired) as caught:
        store.open()
    message = str(caught.value).replace("'", '"')
    assert "\n" not in message
    assert f"cannot be read ({why})" in message
    assert (
        caught.value.for_policy("policies/hr.yaml")
        .args[0]
        .endswith('run "syncctl logout policies/hr.yaml" and then "syncctl login policies/hr.yaml"')
    )


def test_record_round_trip_and_damage(tmp_path: Path) -> None:
    store = TokenCacheStore(TENANT, directory=tmp_path / "msal")
    assert store.read_record() is None
    record = SignInRecord("oid.tid", "alice@contoso.com", "tid", ("https://g/User.Read.All",))
    store.write_record(record)
    assert store.read_record() == record
    assert stat.S_IMODE(store.record_path.stat().st_mode) == 0o600
    store.record_path.write_text('{"username": 1}', encoding="utf-8")
    with pytest.raises(SignInRequired, match="not a syncctl sign-in record"):
        store.read_record()


def test_remove_is_idempotent(tmp_path: Path) -> None:
    store = TokenCacheStore(TENANT, directory=tmp_path / "msal")
    store.persistence().save("{}")
    store.write_record(SignInRecord("a", "b", "c", ()))
    assert store.remove() == [store.path, store.record_path]
    assert store.remove() == []
    assert not store.path.exists()


def test_sign_in_required_names_the_policy() -> None:
    error = SignInRequired("tenant t: not signed in")
    assert str(error) == 'tenant t: not signed in; run "syncctl login POLICY" first'
    assert str(error.for_policy("my policies/hr.yaml")) == (
        "tenant t: not signed in; run \"syncctl login 'my policies/hr.yaml'\" first"
    )


# --- which delegated scopes --------------------------------------------------------------


def interactive(policy_scopes: tuple[str, ...] = ()) -> Tenant:
    return dataclasses.replace(TENANT, credential=InteractiveCredential(scopes=policy_scopes))


def test_default_scopes_read_users_groups_and_removals() -> None:
    policy = make_policy(tenant=interactive())
    assert permissions.delegated_scopes(policy) == (
        "User.Read.All",
        "GroupMember.Read.All",
        "Directory.Read.All",
    )


def test_writeback_adds_only_what_is_enforced() -> None:
    attribute = (AttributeMapping("department", "[department]"),)
    password = (PasswordWriteback("a@b.c", SecretRef(env="X"), mode=WritebackMode.ENFORCE),)
    reported = make_policy(tenant=interactive())
    reported = dataclasses.replace(reported, writeback=Writeback(attributes=attribute))
    assert "User.ReadWrite.All" not in permissions.delegated_scopes(reported)
    enforced = dataclasses.replace(
        reported, writeback=Writeback(mode=WritebackMode.ENFORCE, attributes=attribute)
    )
    assert permissions.delegated_scopes(enforced)[-1] == "User.ReadWrite.All"
    passwords = dataclasses.replace(reported, writeback=Writeback(passwords=password))
    assert permissions.delegated_scopes(passwords)[-1] == "User-PasswordProfile.ReadWrite.All"


def test_policy_scopes_are_added_once() -> None:
    policy = make_policy(tenant=interactive(("User.Read.All", "AuditLog.Read.All")))
    assert permissions.delegated_scopes(policy)[-1] == "AuditLog.Read.All"
    assert permissions.delegated_scopes(policy).count("User.Read.All") == 1


def test_scopes_name_the_clouds_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tenant = dataclasses.replace(interactive(("Extra.Read",)), cloud=Cloud.USGOV)
    with httpx.Client() as http:
        provider = TokenProvider(tenant, http)
        assert provider.delegated_scopes(("https://graph.microsoft.us/Other.All",)) == [
            "https://graph.microsoft.us/User.Read.All",
            "https://graph.microsoft.us/GroupMember.Read.All",
            "https://graph.microsoft.us/Extra.Read",
            "https://graph.microsoft.us/Other.All",
        ]


def test_no_cached_account_is_sign_in_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No login yet: an error, never a prompt, and no network (the authority is unroutable)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tenant = dataclasses.replace(
        TENANT, id="0c0ffee0-0000-4000-8000-000000000001", cloud=Cloud.GLOBAL
    )
    app = _FakeApp()
    with httpx.Client() as http:
        provider = TokenProvider(tenant, http)
        provider._app = app  # no discovery: the cache alone decides
        with pytest.raises(SignInRequired, match=r"not signed in \(no cached sign-in for app"):
            provider.token()
    assert app.silent_calls == 0


class _FakeApp:
    silent_calls = 0

    def get_accounts(self) -> list[dict[str, str]]:
        return []

    def acquire_token_silent_with_error(self, *args: object, **kwargs: object) -> None:
        self.silent_calls += 1


def _token(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_token_scopes_reads_scp() -> None:
    assert token_scopes(_token({"scp": "User.Read.All GroupMember.Read.All"})) == frozenset(
        {"User.Read.All", "GroupMember.Read.All"}
    )
    assert token_scopes(_token({"roles": ["User.Read.All"]})) is None
    assert token_scopes("not-a-jwt") is None
