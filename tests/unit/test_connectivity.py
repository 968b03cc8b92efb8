"""How ``syncctl.connectivity`` classifies each side of a policy, from the exception types
sign-in and targets raise; and that ``validate --online`` keeps its wording."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from syncctl import connectivity
from syncctl.cli.status import _status_line
from syncctl.connectivity import (
    Connection,
    ConnectionCheck,
    Side,
    SideCheck,
    check_online,
    check_source_side,
    check_sqlite_path,
    check_target_side,
)
from syncctl.errors import (
    AuthError,
    GraphError,
    PermissionsMissing,
    SecretError,
    SignInRefused,
    SignInUnreachable,
    SnapshotError,
    TargetError,
    TargetRefused,
    TransientTargetError,
)
from syncctl.policy.model import PluginTarget, SqliteTarget
from syncctl.source.token_claims import aadsts_code
from tests.unit.source.policies import make_policy


def _source_raising(monkeypatch: pytest.MonkeyPatch, error: Exception) -> SideCheck:
    def fail(policy: Any) -> tuple[str, ...]:
        raise error

    monkeypatch.setattr("syncctl.source.check_source", fail)
    return check_source_side(make_policy())


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (
            SignInRefused("AADSTS7000222: expired", code="AADSTS7000222"),
            "unauthorized",
            "AADSTS7000222",
        ),
        (SignInRefused("refused without a code"), "unauthorized", None),
        (SignInUnreachable("cannot reach the sign-in service"), "unreachable", None),
        (SnapshotError("snapshot.json: not JSON"), "unreachable", None),
        (SecretError("environment variable TEST_SECRET is not set"), "unauthorized", None),
        (AuthError("certificate c.pem: file not found"), "unauthorized", None),
        (GraphError("Graph failed"), "unreachable", None),
    ],
)
def test_source_failures_are_classified_by_type(
    monkeypatch: pytest.MonkeyPatch, error: Exception, status: str, code: str | None
) -> None:
    side = _source_raising(monkeypatch, error)

    assert (side.side, side.status, side.code) == (Side.SOURCE, status, code)
    assert side.detail == str(error)
    assert side.failures == (str(error),)


def test_missing_permissions_are_forbidden_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["lacks GroupMember.Read.All, which ...", "lacks Directory.Read.All, which ..."]
    error = PermissionsMissing(lines, ("GroupMember.Read.All", "Directory.Read.All"))

    side = _source_raising(monkeypatch, error)

    assert side.status is Connection.FORBIDDEN
    assert side.missing_permissions == ("GroupMember.Read.All", "Directory.Read.All")
    assert side.detail == (
        "signed in to Entra, but the app registration lacks the application permissions "
        "GroupMember.Read.All, Directory.Read.All; add them and grant admin consent"
    )
    assert side.failures == tuple(lines)  # validate --online keeps one line per permission


def test_a_connected_source_keeps_what_it_could_not_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("syncctl.source.check_source", lambda policy: ("no roles claim",))

    side = check_source_side(make_policy())

    assert side.status is Connection.CONNECTED
    assert side.detail == "signed in to Entra; no roles claim"
    assert side.unchecked == ("no roles claim",)


class FakeTarget:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.closed = False

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


def _scim_policy() -> Any:
    from syncctl.policy.model import ScimTarget

    return dataclasses.replace(make_policy(), target=ScimTarget(url="https://scim.example.com"))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (None, "connected"),
        (
            TargetRefused("GET /Users: refused the token (401 Unauthorized)", status=401),
            "unauthorized",
        ),
        (
            TargetRefused("POST /token: token request refused (status 400)", status=400),
            "unauthorized",
        ),
        (TargetRefused("GET /Users: refused the token (403 Forbidden)", status=403), "forbidden"),
        (TransientTargetError("GET /Users: connection failed (ConnectError)"), "unreachable"),
        (TargetError("GET /Users: TLS certificate not trusted"), "unreachable"),
        (SecretError("environment variable SCIM_TOKEN is not set"), "unauthorized"),
    ],
)
def test_target_failures_are_classified_by_type(
    monkeypatch: pytest.MonkeyPatch, error: Exception | None, status: str
) -> None:
    target = FakeTarget(error)
    monkeypatch.setattr("syncctl.targets.base.open_target", lambda policy: target)

    side = check_target_side(_scim_policy())

    assert (side.side, side.status) == (Side.TARGET, status)
    assert side.detail == ("target answered" if error is None else str(error))
    assert target.closed


def test_a_target_without_a_check_is_connected_but_unchecked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("syncctl.targets.base.open_target", lambda policy: _NoCheck())
    policy = dataclasses.replace(make_policy(), target=PluginTarget(type="ldap"))

    side = check_target_side(policy)

    assert side.status is Connection.CONNECTED
    assert side.unchecked == ("ldap target has no online check",)


class _NoCheck:
    def close(self) -> None:
        pass


# --- SQLite: local, writes nothing ------------------------------------------------------------


def test_sqlite_missing_file_in_a_writable_directory_is_connected(tmp_path: Path) -> None:
    side = check_sqlite_path(tmp_path / "a" / "b" / "t.db")

    assert side.status is Connection.CONNECTED
    assert side.local
    assert not (tmp_path / "a").exists()


def test_sqlite_existing_database_is_connected(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")

    assert check_sqlite_path(path).detail == f"sqlite {path}: database opens"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: (root / "f").write_text("x") and root / "f" / "t.db", "is not a directory"),
        (lambda root: (root / "d").mkdir() or root / "d", "not a file"),
        (
            lambda root: (root / "t.db").write_bytes(b"junk" * 100) and root / "t.db",
            "cannot read the database: file is not a database",
        ),
        (lambda root: root / ("x" * 300) / "t.db", "File name too long"),
    ],
)
def test_sqlite_paths_that_cannot_be_used_are_unreachable(
    tmp_path: Path, make: Any, expected: str
) -> None:
    path = make(tmp_path)

    side = check_sqlite_path(path)

    assert side.status is Connection.UNREACHABLE
    assert expected in side.detail
    assert side.failures == (side.detail,)


def test_sqlite_unwritable_directory_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root may write anywhere, so the refusal is what os.access says for this directory.
    real_access = os.access
    monkeypatch.setattr(
        connectivity.os,
        "access",
        lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode),
    )

    side = check_sqlite_path(tmp_path / "t.db")

    assert side.status is Connection.UNREACHABLE
    assert side.detail == f"sqlite {tmp_path / 't.db'}: directory {tmp_path} is not writable"


# --- the per-policy result, its JSON and its text line -----------------------------------------


def _both_failed() -> ConnectionCheck:
    source = SideCheck(Side.SOURCE, Connection.UNAUTHORIZED, "AADSTS7000215: bad", "AADSTS7000215")
    target = SideCheck(Side.TARGET, Connection.UNREACHABLE, "GET /Users: connection failed")
    return ConnectionCheck(make_policy(), source, target)


def test_the_source_is_reported_first_and_the_target_still_shown() -> None:
    check = _both_failed()
    row = {"policy": "p", "last_run": None, "last_apply": None, "managed": 0, "locked_by": None}

    line = _status_line({**row, "connection": check.as_dict()})

    assert check.as_dict()["status"] == "unauthorized"
    assert check.as_dict()["side"] == "source"
    assert check.as_dict()["code"] == "AADSTS7000215"
    assert line == (
        'policy "p": unauthorized: source: AADSTS7000215: bad; target unreachable: '
        "GET /Users: connection failed; never run; 0 managed objects"
    )


def test_a_connected_policy_shows_only_what_went_unchecked() -> None:
    source = SideCheck(Side.SOURCE, Connection.CONNECTED, "signed in", unchecked=("no roles",))
    target = SideCheck(Side.TARGET, Connection.CONNECTED, "target answered")
    check = ConnectionCheck(make_policy(), source, target)

    row = {"policy": "p", "last_run": None, "last_apply": None, "managed": 2, "locked_by": None}

    assert check.connected
    assert check.as_dict()["side"] is None
    assert _status_line({**row, "connection": check.as_dict()}) == (
        'policy "p": connected (source: no roles); never run; 2 managed objects'
    )


def test_check_online_keeps_validate_wording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = ["the app registration lacks GroupMember.Read.All ...", "... Directory.Read.All ..."]

    def lacking(policy: Any) -> tuple[str, ...]:
        raise PermissionsMissing(lines, ("GroupMember.Read.All", "Directory.Read.All"))

    monkeypatch.setattr("syncctl.source.check_source", lacking)
    good = dataclasses.replace(make_policy(), target=SqliteTarget(path=tmp_path / "t.db"))
    bad = dataclasses.replace(good, target=SqliteTarget(path=tmp_path / "f" / "t.db"))
    (tmp_path / "f").write_text("x")

    first, second = check_online([good, bad])

    assert first.verified == ()
    assert first.failures == tuple(f"source: {line}" for line in lines)
    assert first.unchecked == ("sqlite target has no online check",)
    assert (
        second.failures[-1]
        == f"target: sqlite {tmp_path / 'f' / 't.db'}: {tmp_path / 'f'} is not a directory"
    )


# --- Entra's codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (
            {"error": "invalid_client", "error_codes": [7000215], "error_description": "x"},
            "AADSTS7000215",
        ),
        (
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000222: The provided client secret keys are expired.",
            },
            "AADSTS7000222",
        ),
        ({"error": "invalid_request", "error_description": "no code here AADSTS1"}, None),
        ({"error": "managed_identity_error"}, None),
        ({"error_codes": ["65001"], "error_description": "AADSTS65001: consent"}, "AADSTS65001"),
    ],
)
def test_aadsts_code(answer: dict[str, Any], code: str | None) -> None:
    assert aadsts_code(answer) == code
