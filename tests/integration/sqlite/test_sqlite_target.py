"""The SQLite target against a real database file: the public schema, its storage shape, and
the behaviour only SQLite can show (unmanaged rows written by an application, adoption,
per-change rollback inside a batch, migrations)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from syncctl.errors import TargetError
from syncctl.model import ObjectKind
from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, Reason
from syncctl.policy.model import Policy, SqliteTarget
from syncctl.scimpath import ENTERPRISE_USER
from syncctl.targets.base import OutcomeStatus, open_target
from syncctl.targets.sqlite import SCHEMA_VERSION, SqliteDirectory, merge_resource
from tests.contract.policy_factory import make_policy
from tests.integration.sqlite.conftest import ALICE, OWNER


def db(policy: Policy) -> sqlite3.Connection:
    return sqlite3.connect(policy.target.path)  # type: ignore[union-attr]


def create_alice(**extra: str) -> Change:
    attrs = {
        "userName": "alice@contoso.com",
        "displayName": "Alice Adams",
        "name.givenName": "Alice",
        'emails[type eq "work"].value': "alice@contoso.com",
        "department": "Finance",
        **extra,
    }
    return Change(
        "user/alice@contoso.com",
        ChangeKind.USER,
        Action.CREATE,
        Reason.ENTERED_SCOPE,
        source_id=ALICE,
        attributes=tuple(AttributeChange(p, None, v) for p, v in sorted(attrs.items())),
    )


def test_registry_builds_the_sqlite_target(policy: Policy) -> None:
    target = open_target(policy)
    try:
        assert isinstance(target, SqliteDirectory)
    finally:
        target.close()


def test_schema_is_the_documented_one(target: SqliteDirectory, policy: Policy) -> None:
    target.apply([], OWNER)  # creates the database (a read does not)
    with db(policy) as conn:
        columns = {
            table: [(r[1], r[2], r[3], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")]
            for table in ("users", "groups", "members")
        }
        assert columns["users"] == [
            ("id", "TEXT", 0, 1),
            ("external_id", "TEXT", 0, 0),
            ("user_name", "TEXT", 1, 0),
            ("active", "INTEGER", 1, 0),
            ("attributes", "TEXT", 1, 0),
            ("managed_by", "TEXT", 0, 0),
            ("created_at", "TEXT", 0, 0),
            ("updated_at", "TEXT", 0, 0),
            ("version", "INTEGER", 1, 0),
        ]
        assert [c[0] for c in columns["groups"]] == [
            "id",
            "external_id",
            "display_name",
            "attributes",
            "managed_by",
            "created_at",
            "updated_at",
            "version",
        ]
        assert [c[0] for c in columns["members"]] == ["group_id", "user_id"]
        foreign = sorted(
            (r[2], r[3], r[6]) for r in conn.execute("PRAGMA foreign_key_list(members)")
        )
        assert foreign == [("groups", "group_id", "CASCADE"), ("users", "user_id", "CASCADE")]
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_attributes_column_is_the_scim_resource(target: SqliteDirectory, policy: Policy) -> None:
    target.apply([create_alice()], OWNER)
    with db(policy) as conn:
        row = conn.execute(
            "SELECT external_id, user_name, active, attributes, managed_by, version FROM users"
        ).fetchone()
    external_id, user_name, active, attributes, managed_by, version = row
    assert (external_id, user_name, active, managed_by, version) == (
        ALICE,
        "alice@contoso.com",
        1,
        OWNER,
        1,
    )
    assert json.loads(attributes) == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
        "userName": "alice@contoso.com",
        "displayName": "Alice Adams",
        "name": {"givenName": "Alice"},
        "emails": [{"type": "work", "value": "alice@contoso.com"}],
        ENTERPRISE_USER: {"department": "Finance"},
    }


def insert_unmanaged(policy: Policy, user_name: str, attributes: dict[str, object]) -> str:
    with db(policy) as conn:
        conn.execute(
            "INSERT INTO users(id, external_id, user_name, active, attributes, managed_by,"
            " version) VALUES ('app-1', NULL, ?, 1, ?, NULL, 7)",
            (user_name, json.dumps(attributes)),
        )
    return "app-1"


def test_rows_written_by_the_application_are_unmanaged(
    target: SqliteDirectory, policy: Policy
) -> None:
    target.apply([], OWNER)  # creates the database (a read does not)
    insert_unmanaged(policy, "legacy@contoso.com", {"userName": "legacy@contoso.com"})
    (legacy,) = target.read(OWNER, ()).users
    assert legacy.managed_by is None
    assert legacy.external_id is None
    assert legacy.version == "7"


def test_create_colliding_with_an_unmanaged_row_fails_alone(
    target: SqliteDirectory, policy: Policy
) -> None:
    target.apply([], OWNER)  # creates the database (a read does not)
    insert_unmanaged(policy, "alice@contoso.com", {"userName": "alice@contoso.com"})
    group = Change(
        "group/Admins",
        ChangeKind.GROUP,
        Action.CREATE,
        Reason.ENTERED_SCOPE,
        source_id="g1",
        attributes=(AttributeChange("displayName", None, "Admins"),),
    )
    outcomes = target.apply([create_alice(), group], OWNER)
    assert [o.status for o in outcomes] == [OutcomeStatus.FAILED, OutcomeStatus.APPLIED]
    assert "already exists" in (outcomes[0].message or "")
    snapshot = target.read(OWNER, ())
    assert [u.managed_by for u in snapshot.users] == [None]  # untouched
    assert [g.key for g in snapshot.groups] == ["Admins"]  # the rest of the batch committed


def test_adopt_takes_ownership_and_keeps_application_data(
    target: SqliteDirectory, policy: Policy
) -> None:
    target.apply([], OWNER)  # creates the database (a read does not)
    row_id = insert_unmanaged(
        policy,
        "alice@contoso.com",
        {
            "userName": "alice@contoso.com",
            "displayName": "alice",
            "emails": [{"type": "home", "value": "alice@home.example"}],
            "urn:example:app:1.0:User": {"vaultTier": "gold"},
        },
    )
    (legacy,) = target.read(OWNER, ()).users
    adopt = Change(
        "user/alice@contoso.com",
        ChangeKind.USER,
        Action.ADOPT,
        Reason.MATCHED_EXISTING,
        source_id=ALICE,
        target_id=row_id,
        attributes=(
            AttributeChange("displayName", "alice", "Alice Adams"),
            AttributeChange('emails[type eq "work"].value', None, "alice@contoso.com"),
        ),
        version=legacy.version,
    )
    assert [o.status for o in target.apply([adopt], OWNER)] == [OutcomeStatus.APPLIED]
    (alice,) = target.read(OWNER, ()).users
    assert (alice.managed_by, alice.external_id, alice.active) == (OWNER, ALICE, True)
    assert alice.attributes["displayName"] == "Alice Adams"
    with db(policy) as conn:
        stored = json.loads(conn.execute("SELECT attributes FROM users").fetchone()[0])
    assert stored["urn:example:app:1.0:User"] == {"vaultTier": "gold"}
    assert {"type": "home", "value": "alice@home.example"} in stored["emails"]
    # Re-running the adopt after it committed (a crash before the state was saved) converges.
    again = target.apply([adopt], OWNER)
    assert again[0].status in (OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED)


def test_adopt_refuses_a_row_edited_since_planning(target: SqliteDirectory, policy: Policy) -> None:
    target.apply([], OWNER)  # creates the database (a read does not)
    row_id = insert_unmanaged(policy, "alice@contoso.com", {"userName": "alice@contoso.com"})
    adopt = Change(
        "user/alice@contoso.com",
        ChangeKind.USER,
        Action.ADOPT,
        Reason.MATCHED_EXISTING,
        source_id=ALICE,
        target_id=row_id,
        version="6",
    )
    assert [o.status for o in target.apply([adopt], OWNER)] == [OutcomeStatus.STALE]
    assert target.read(OWNER, ()).users[0].managed_by is None


def test_newer_schema_is_refused(policy: Policy) -> None:
    path = policy.target.path  # type: ignore[union-attr]
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version(version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    directory = SqliteDirectory(policy)
    try:
        with pytest.raises(TargetError, match="newer than this syncctl supports"):
            directory.read(OWNER, ())
    finally:
        directory.close()


def test_unreadable_database_is_a_target_error(tmp_path: Path) -> None:
    policy = make_policy(tmp_path)
    path = policy.target.path  # type: ignore[union-attr]
    path.write_bytes(b"this is not a database" * 100)
    directory = SqliteDirectory(policy)
    try:
        with pytest.raises(TargetError, match=str(path)):
            directory.read(OWNER, ())
    finally:
        directory.close()


@pytest.mark.parametrize(
    ("old", "changes", "expected"),
    [
        (
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "name": {"givenName": "A"}},
            {"name.givenName": None},
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]},
        ),
        (
            {"emails": [{"type": "work", "value": "a@x"}, {"type": "home", "value": "h@x"}]},
            {'emails[type eq "work"].value': None},
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "emails": [{"type": "home", "value": "h@x"}],
            },
        ),
        (
            {"emails": [{"type": "Work", "value": "a@x", "primary": True}]},
            {'emails[type eq "work"].value': "b@x"},
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "emails": [{"type": "Work", "value": "b@x", "primary": True}],
            },
        ),
        (
            {},
            {"department": "Legal", "title": "CFO"},
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
                "title": "CFO",
                ENTERPRISE_USER: {"department": "Legal"},
            },
        ),
    ],
)
def test_merge_resource(
    old: dict[str, Any], changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert merge_resource(old, changes, ObjectKind.USER) == expected


def test_reading_an_absent_database_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "data" / "app.db"
    policy = make_policy(tmp_path, target=SqliteTarget(path=path))
    directory = SqliteDirectory(policy)
    try:
        snapshot = directory.read(OWNER, ())
        assert (snapshot.users, snapshot.groups, dict(snapshot.members)) == ((), (), {})
        assert not path.parent.exists()
        # ... and the apply that follows creates it.
        assert [o.status for o in directory.apply([create_alice()], OWNER)] == [
            OutcomeStatus.APPLIED
        ]
        assert [u.key for u in directory.read(OWNER, ()).users] == ["alice@contoso.com"]
    finally:
        directory.close()


def test_database_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    policy = make_policy(tmp_path)
    path = policy.target.path  # type: ignore[union-attr]
    old = os.umask(0o022)
    directory = SqliteDirectory(policy)
    try:
        directory.apply([create_alice()], OWNER)
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    finally:
        directory.close()
        os.umask(old)
    assert modes == {f.name: 0o600 for f in files}


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    # An administrator who let an application's group read the database keeps it that way.
    policy = make_policy(tmp_path)
    path = policy.target.path  # type: ignore[union-attr]
    directory = SqliteDirectory(policy)
    try:
        directory.apply([], OWNER)
    finally:
        directory.close()
    path.chmod(0o640)
    directory = SqliteDirectory(policy)
    try:
        directory.apply([create_alice()], OWNER)
        assert stat.S_IMODE(path.with_name(path.name + "-wal").stat().st_mode) == 0o640
    finally:
        directory.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_reading_a_current_database_does_not_wait_for_its_writer(tmp_path: Path) -> None:
    # A plan reads while an application (or another policy) holds the write lock.
    policy = make_policy(tmp_path)
    path = policy.target.path  # type: ignore[union-attr]
    writer = SqliteDirectory(policy)
    try:
        writer.apply([create_alice()], OWNER)
    finally:
        writer.close()
    with sqlite3.connect(path, isolation_level=None, timeout=0) as application:
        application.execute("BEGIN IMMEDIATE")
        reader = SqliteDirectory(policy)
        try:
            # Before, opening took the write lock to check the schema: "database is locked"
            # after the 30 s busy timeout.
            assert [u.key for u in reader.read(OWNER, ()).users] == ["alice@contoso.com"]
        finally:
            reader.close()
            application.execute("ROLLBACK")
