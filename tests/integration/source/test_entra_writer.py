"""EntraWriter against the TLS emulator, signed in through the real TokenProvider: properties
and passwords written with one PATCH per user, the password recorded only as a digest with
Entra's lastPasswordChangeDateTime, and every refusal an Outcome that never quotes it."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from syncctl.emulator import Emulator
from syncctl.emulator.identity import DEFAULT_ROLES
from syncctl.errors import GraphError
from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, Reason
from syncctl.policy.model import (
    ClientSecretCredential,
    PasswordWriteback,
    SecretRef,
    Writeback,
    WritebackMode,
)
from syncctl.source import permissions
from syncctl.source.auth import TokenProvider
from syncctl.source.clouds import graph_base
from syncctl.source.entra_writer import (
    GONE,
    WEAK_PASSWORD,
    EntraWriter,
    PasswordWrite,
    password_attribute,
)
from syncctl.source.graph import GraphClient
from syncctl.source.http import build_http_client
from syncctl.targets.base import Outcome, OutcomeStatus
from tests.integration.source.conftest import emulator_tenant
from tests.unit.source.policies import make_policy

PASSWORD_ENV = "SYNCCTL_TEST_WRITEBACK_PASSWORD"
PASSWORD = "Svc-Acc0unt!pass"  # meets Entra's policy


@dataclass
class Session:
    emu: Emulator
    graph: GraphClient
    slept: list[float] = field(default_factory=list)

    def writer(self, passwords: dict[str, PasswordWrite] | None = None) -> EntraWriter:
        return EntraWriter(self.graph, passwords or {})


def _session(emu: Emulator, monkeypatch: pytest.MonkeyPatch, roles: list[str]) -> Iterator[Session]:
    """A Graph client of a new app granted ``roles`` (besides the read ones), signed in
    through the real TokenProvider; waits are recorded instead of slept, so a Retry-After
    costs no time."""
    client_id, secret = emu.add_application(roles=[*DEFAULT_ROLES, *roles])
    secret_env = f"SYNCCTL_TEST_APP_SECRET_{client_id.replace('-', '_')}"
    monkeypatch.setenv(secret_env, secret)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    emu.tenant.writes.clear()
    credential = ClientSecretCredential(SecretRef(env=secret_env))
    tenant = dataclasses.replace(emulator_tenant(emu, credential), client_id=client_id)
    http = build_http_client(tenant.ca_bundle)
    slept: list[float] = []
    try:
        graph = GraphClient(
            http, graph_base(tenant), TokenProvider(tenant, http), sleep=slept.append
        )
        yield Session(emu, graph, slept)
    finally:
        http.close()


@pytest.fixture
def session(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    yield from _session(emu, monkeypatch, ["User.ReadWrite.All"])


@pytest.fixture
def password_only(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    yield from _session(emu, monkeypatch, ["User-PasswordProfile.ReadWrite.All"])


@pytest.fixture
def reader_only(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    yield from _session(emu, monkeypatch, [])


def _users(emu: Emulator, count: int, start: int = 0) -> list[str]:
    return sorted(emu.tenant.users)[start : start + count]


def _change(emu: Emulator, user_id: str, *attributes: AttributeChange) -> Change:
    upn = emu.tenant.users[user_id]["userPrincipalName"]
    return Change(
        address=f"entra_user/{upn}",
        kind=ChangeKind.ENTRA_USER,
        action=Action.UPDATE,
        reason=Reason.ENTRA_DIFFERS,
        source_id=user_id,
        attributes=attributes,
    )


def _property(path: str, before: object, after: object) -> AttributeChange:
    return AttributeChange(path=path, before=before, after=after)


def _password_from_env(force_change: bool = False) -> PasswordWrite:
    return PasswordWrite(SecretRef(env=PASSWORD_ENV), force_change)


def _all_text(outcomes: list[Outcome], writer: EntraWriter, *more: object) -> str:
    return "\n".join(
        [repr(o) for o in outcomes] + [repr(writer.password_records)] + [str(m) for m in more]
    )


def test_properties_are_applied_in_one_patch_per_user(session: Session) -> None:
    emu = session.emu
    first, second = _users(emu, 2)
    changes = [
        _change(
            emu,
            first,
            _property("employeeId", emu.tenant.users[first].get("employeeId"), "E-1001"),
            _property("jobTitle", emu.tenant.users[first].get("jobTitle"), "Service account"),
        ),
        _change(emu, second, _property("department", None, "Platform")),
    ]
    emu.reset_requests()
    outcomes = session.writer().apply(changes, "apps")
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * 2
    assert [o.address for o in outcomes] == [c.address for c in changes]
    assert emu.tenant.users[first]["employeeId"] == "E-1001"
    assert emu.tenant.users[first]["jobTitle"] == "Service account"
    assert emu.tenant.users[second]["department"] == "Platform"
    assert sorted(emu.tenant.writes) == sorted(
        [(first, ("employeeId", "jobTitle")), (second, ("department",))]
    )
    patches = [r for r in emu.recorded() if r[0] == "PATCH"]
    assert sorted(p[1] for p in patches) == sorted(f"/v1.0/users/{u}" for u in (first, second))
    # no password: nothing read back, nothing recorded
    assert not [r for r in emu.recorded() if r[0] == "GET" and "/users/" in r[1]]


def test_password_is_set_from_env_and_recorded_as_digest(session: Session) -> None:
    emu = session.emu
    (user,) = _users(emu, 1, start=10)
    before = emu.tenant.users[user]["lastPasswordChangeDateTime"]
    emu.tenant.advance(3600)  # the emulator's clock: the new change time is later
    writer = session.writer({user: _password_from_env(force_change=True)})
    change = _change(emu, user, _property("employeeId", None, "SVC-1"), password_attribute())
    outcomes = writer.apply([change], "apps")
    assert outcomes == [Outcome(change.address, OutcomeStatus.APPLIED)]
    assert emu.tenant.password_matches(user, PASSWORD)
    assert emu.tenant.must_change_password(user) is True
    assert emu.tenant.users[user]["employeeId"] == "SVC-1"
    assert emu.tenant.writes == [(user, ("employeeId", "passwordProfile"))]
    record = writer.password_records[user]
    assert record.digest.matches(PASSWORD)
    assert not record.digest.matches(PASSWORD + "x")
    changed = emu.tenant.users[user]["lastPasswordChangeDateTime"]
    assert changed > before
    assert record.changed_at == changed
    assert PASSWORD not in _all_text(outcomes, writer)


def test_password_alone_needs_only_its_own_permission(password_only: Session) -> None:
    emu = password_only.emu
    (user,) = _users(emu, 1, start=11)
    writer = password_only.writer({user: _password_from_env()})
    outcomes = writer.apply([_change(emu, user, password_attribute())], "apps")
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED]
    assert emu.tenant.password_matches(user, PASSWORD)
    assert emu.tenant.must_change_password(user) is False
    assert writer.password_records[user].changed_at is not None


def test_missing_permissions_are_named(password_only: Session, reader_only: Session) -> None:
    emu = password_only.emu
    first, second, third = _users(emu, 3, start=20)
    changes = [
        _change(emu, first, _property("employeeId", None, "E-1")),
        _change(emu, second, password_attribute()),
        _change(emu, third, _property("employeeId", None, "E-3"), password_attribute()),
    ]
    passwords = {second: _password_from_env(), third: _password_from_env()}

    # only the password's permission: properties are refused, the password alone is set
    outcomes = password_only.writer(passwords).apply(changes, "apps")
    assert [o.status for o in outcomes] == [
        OutcomeStatus.FAILED,
        OutcomeStatus.APPLIED,
        OutcomeStatus.FAILED,
    ]
    assert outcomes[0].message is not None and outcomes[2].message is not None
    assert "User.ReadWrite.All to update its properties" in outcomes[0].message
    assert "passwordProfile" not in outcomes[0].message
    assert "User.ReadWrite.All to update its properties" in outcomes[2].message
    assert "User-PasswordProfile.ReadWrite.All or User.ReadWrite.All" in outcomes[2].message
    assert emu.tenant.users[first].get("employeeId") != "E-1"
    assert not emu.tenant.password_matches(third, PASSWORD)

    # no write permission at all
    emu.tenant.writes.clear()
    denied = reader_only.writer(passwords).apply(changes[1:2], "apps")
    assert denied[0].status is OutcomeStatus.FAILED
    message = denied[0].message or ""
    assert message.startswith("403 Authorization_RequestDenied: the app registration lacks")
    assert "User-PasswordProfile.ReadWrite.All or User.ReadWrite.All to set its password" in message
    # the directory role Graph also wants for app-only password resets, and for admins
    assert "User Administrator" in message
    assert "Privileged Authentication Administrator" in message
    assert "\n" not in message
    assert emu.tenant.writes == []
    assert PASSWORD not in _all_text(outcomes + denied, reader_only.writer(passwords))


@pytest.mark.parametrize("weak", ["short1A", "onlylowercaseletters", "Abcdefgh1é"])
def test_weak_password_fails_without_the_value(
    session: Session, monkeypatch: pytest.MonkeyPatch, weak: str
) -> None:
    emu = session.emu
    (user,) = _users(emu, 1, start=30)
    monkeypatch.setenv(PASSWORD_ENV, weak)
    writer = session.writer({user: _password_from_env()})
    outcomes = writer.apply([_change(emu, user, password_attribute())], "apps")
    assert outcomes[0].status is OutcomeStatus.FAILED
    assert outcomes[0].message == WEAK_PASSWORD
    assert writer.password_records == {}
    assert emu.tenant.writes == []
    assert weak not in _all_text(outcomes, writer)


def test_deleted_user_fails_as_gone(session: Session) -> None:
    emu = session.emu
    gone, kept = _users(emu, 2, start=40)
    emu.tenant.soft_delete_user(gone)
    writer = session.writer({gone: _password_from_env()})
    changes = [_change(emu, kept, _property("city", None, "Oslo"))]
    upn = emu.tenant.deleted_users[gone]["userPrincipalName"]
    deleted_change = Change(
        address=f"entra_user/{upn}",
        kind=ChangeKind.ENTRA_USER,
        action=Action.UPDATE,
        reason=Reason.PASSWORD_NOT_SET,
        source_id=gone,
        attributes=(password_attribute(),),
    )
    outcomes = writer.apply([deleted_change, *changes], "apps")
    assert [(o.status, o.message) for o in outcomes] == [
        (OutcomeStatus.FAILED, GONE),
        (OutcomeStatus.APPLIED, None),
    ]
    assert writer.password_records == {}
    assert emu.tenant.writes == [(kept, ("city",))]


def test_throttled_patch_is_retried_after_retry_after(session: Session) -> None:
    emu = session.emu
    (user,) = _users(emu, 1, start=50)
    rule = emu.faults.add(
        path=rf"/users/{user}$", method="PATCH", status=429, retry_after=7, times=2
    )
    writer = session.writer({user: _password_from_env()})
    outcomes = writer.apply([_change(emu, user, password_attribute())], "apps")
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED]
    assert rule.fired == 2
    assert session.slept == [7.0, 7.0]  # Graph's Retry-After, not backoff
    assert emu.tenant.writes == [(user, ("passwordProfile",))]  # written once
    assert emu.tenant.password_matches(user, PASSWORD)


def test_graph_unreachable_raises_without_the_password(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    emu = session.emu
    first, second = _users(emu, 2, start=60)
    emu.faults.add(path=r"/users/", method="PATCH", status=503, times=None)
    writer = session.writer({first: _password_from_env()})
    changes = [
        _change(emu, first, password_attribute()),
        _change(emu, second, password_attribute()),
    ]
    with caplog.at_level(logging.DEBUG), pytest.raises(GraphError) as raised:
        writer.apply(changes, "apps")
    assert raised.value.status == 503
    assert "gave up after" in str(raised.value)
    assert emu.tenant.writes == []
    assert PASSWORD not in _all_text([], writer, raised.value, repr(raised.value), caplog.text)


def test_graph_message_echoing_the_password_is_masked(session: Session) -> None:
    emu = session.emu
    (user,) = _users(emu, 1, start=70)
    emu.faults.add(
        path=rf"/users/{user}$",
        method="PATCH",
        status=400,
        message=f"Invalid value '{PASSWORD}' for property 'passwordProfile'.",
    )
    writer = session.writer({user: _password_from_env()})
    outcomes = writer.apply([_change(emu, user, password_attribute())], "apps")
    assert outcomes[0].status is OutcomeStatus.FAILED
    assert outcomes[0].message is not None
    assert outcomes[0].message.startswith("Entra refused the update: Invalid value '(redacted)'")
    assert "status 400" in outcomes[0].message
    assert PASSWORD not in _all_text(outcomes, writer)


def test_unusable_changes_fail_one_by_one(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = session.emu
    first, second = _users(emu, 2, start=80)
    monkeypatch.delenv(PASSWORD_ENV)
    writer = session.writer({second: _password_from_env()})
    changes = [
        _change(emu, first, password_attribute()),  # no password configured for it
        _change(emu, second, password_attribute()),  # its secret is not set
        Change("user/x", ChangeKind.USER, Action.UPDATE, Reason.ATTRIBUTES_CHANGED, first),
    ]
    outcomes = writer.apply(changes, "apps")
    assert [o.status for o in outcomes] == [OutcomeStatus.FAILED] * 3
    assert outcomes[0].message == "no password is configured for this user"
    assert outcomes[1].message == (
        f"cannot read the password secret: environment variable {PASSWORD_ENV} is not set or empty"
    )
    assert "entra_user updates" in (outcomes[2].message or "")
    assert emu.tenant.writes == []


def test_capabilities(session: Session) -> None:
    caps = session.writer().capabilities()
    assert caps.parallel_safe and not caps.versions and not caps.marks_ownership
    assert 1 <= caps.max_batch <= 20


def test_status_check_names_the_writeback_permissions() -> None:
    """``validate --online`` / ``status --check`` ask for what the writer's PATCHes need:
    User.ReadWrite.All for properties, User-PasswordProfile.ReadWrite.All for passwords."""
    policy = make_policy()
    reads = {*DEFAULT_ROLES}
    secret = SecretRef(env=PASSWORD_ENV)
    enforce = WritebackMode.ENFORCE
    reported = (PasswordWriteback(user="svc@contoso.com", secret=secret),)
    passwords = (PasswordWriteback(user="svc@contoso.com", secret=secret, mode=enforce),)
    attribute = policy.mappings.user.attributes[0]
    only_passwords = dataclasses.replace(policy, writeback=Writeback(passwords=passwords))
    both = dataclasses.replace(
        policy, writeback=Writeback(mode=enforce, attributes=(attribute,), passwords=passwords)
    )
    assert permissions.missing(policy, reads) == []
    # Report mode only reads: it needs no write permission.
    report_only = Writeback(attributes=(attribute,), passwords=reported)
    assert permissions.missing(dataclasses.replace(policy, writeback=report_only), reads) == []
    (line,) = permissions.missing(only_passwords, reads)
    assert "lacks the application permission User-PasswordProfile.ReadWrite.All" in line
    assert "writeback" in line
    assert permissions.missing(only_passwords, {*reads, "User-PasswordProfile.ReadWrite.All"}) == []
    assert permissions.missing(only_passwords, {*reads, "User.ReadWrite.All"}) == []
    # Directory.ReadWrite.All "does not allow the app to ... reset user passwords"
    assert len(permissions.missing(only_passwords, {*reads, "Directory.ReadWrite.All"})) == 1
    lacking = permissions.missing(both, reads)
    assert [line.split(" which")[0] for line in lacking] == [
        "the app registration lacks the application permission User.ReadWrite.All,",
        "the app registration lacks the application permission User-PasswordProfile.ReadWrite.All,",
    ]
    assert permissions.missing(both, {*reads, "User.ReadWrite.All"}) == []
