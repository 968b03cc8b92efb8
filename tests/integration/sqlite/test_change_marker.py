"""The SQLite target's change marker against real database files: it stays equal exactly while
nothing is written, whoever writes (syncctl, or an application with its own connection), and
a re-created database never repeats a marker."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, Reason
from syncctl.policy.model import Policy, SqliteTarget
from syncctl.targets.base import OutcomeStatus
from syncctl.targets.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteDirectory, open_database
from syncctl.targets.sqlite_schema import statements
from tests.contract.policy_factory import make_policy
from tests.integration.sqlite.conftest import ALICE, OWNER

BOB = "11111111-0000-0000-0000-000000000002"
ADMINS = "22222222-0000-0000-0000-000000000001"


def path_of(policy: Policy) -> Path:
    assert isinstance(policy.target, SqliteTarget)
    return policy.target.path


def marker(target: SqliteDirectory) -> str:
    found = target.change_marker()
    assert found is not None
    return found


def create(kind: ChangeKind, entra_id: str, key: str) -> Change:
    path = "userName" if kind is ChangeKind.USER else "displayName"
    return Change(
        f"{kind}/{key}",
        kind,
        Action.CREATE,
        Reason.ENTERED_SCOPE,
        source_id=entra_id,
        attributes=(AttributeChange(path, None, key),),
    )


def member(action: Action, group: str, user: str) -> Change:
    return Change(
        f"membership/{group}/{user}",
        ChangeKind.MEMBERSHIP,
        action,
        Reason.MEMBER_IN_SCOPE,
        group=group,
        user=user,
    )


def populate(target: SqliteDirectory) -> None:
    """Alice and Bob, and Alice in Admins."""
    outcomes = target.apply(
        [
            create(ChangeKind.USER, ALICE, "alice@contoso.com"),
            create(ChangeKind.USER, BOB, "bob@contoso.com"),
            create(ChangeKind.GROUP, ADMINS, "Admins"),
            member(Action.ADD, ADMINS, ALICE),
        ],
        OWNER,
    )
    assert {o.status for o in outcomes} == {OutcomeStatus.APPLIED}


def test_a_missing_database_has_no_marker_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "data" / "app.db"
    directory = SqliteDirectory(make_policy(tmp_path, target=SqliteTarget(path=path)))
    try:
        assert directory.change_marker() is None
        assert not path.parent.exists()
        directory.apply([create(ChangeKind.USER, ALICE, "alice@contoso.com")], OWNER)
        assert directory.change_marker() is not None
    finally:
        directory.close()


def test_marker_stays_equal_across_reads_reruns_and_reopens(
    target: SqliteDirectory, policy: Policy
) -> None:
    populate(target)
    first = marker(target)
    target.read(OWNER, ())
    # A re-run of the same creates finds everything in place and writes nothing.
    again = target.apply([create(ChangeKind.USER, ALICE, "alice@contoso.com")], OWNER)
    assert [o.status for o in again] == [OutcomeStatus.UNCHANGED]
    assert marker(target) == first
    target.close()
    reopened = SqliteDirectory(policy)
    try:
        assert marker(reopened) == first
    finally:
        reopened.close()


def test_every_syncctl_write_moves_the_marker(target: SqliteDirectory) -> None:
    target.apply([], OWNER)  # creates the (empty) database
    seen = [marker(target)]
    populate(target)
    seen.append(marker(target))
    alice = next(u for u in target.read(OWNER, ()).users if u.external_id == ALICE)
    update = Change(
        "user/alice@contoso.com",
        ChangeKind.USER,
        Action.UPDATE,
        Reason.ATTRIBUTES_CHANGED,
        source_id=ALICE,
        target_id=alice.target_id,
        attributes=(AttributeChange("displayName", None, "Alice A."),),
    )
    disable = Change(
        "user/alice@contoso.com",
        ChangeKind.USER,
        Action.DISABLE,
        Reason.OUT_OF_SCOPE,
        source_id=ALICE,
        target_id=alice.target_id,
    )
    for batch in (
        [update],
        [disable],
        [member(Action.ADD, ADMINS, BOB)],
        [member(Action.REMOVE, ADMINS, ALICE)],
    ):
        assert [o.status for o in target.apply(batch, OWNER)] == [OutcomeStatus.APPLIED]
        seen.append(marker(target))
    assert len(set(seen)) == len(seen), seen


APPLICATION_WRITES = {
    "users-insert": "INSERT INTO users(id, user_name, active, attributes, version)"
    " VALUES ('app-1', 'legacy@contoso.com', 1, '{}', 1)",
    "users-update": 'UPDATE users SET attributes = \'{"title": "CFO"}\''
    " WHERE user_name = 'alice@contoso.com'",
    "users-delete": "DELETE FROM users WHERE user_name = 'bob@contoso.com'",
    "groups-insert": "INSERT INTO groups(id, display_name, attributes, version)"
    " VALUES ('app-g', 'Legacy', '{}', 1)",
    "groups-update": "UPDATE groups SET display_name = 'Admins!'",
    "groups-delete": "DELETE FROM groups",
    "members-insert": "INSERT INTO members(group_id, user_id)"
    " SELECT g.id, u.id FROM groups g, users u WHERE u.user_name = 'bob@contoso.com'",
    "members-update": "UPDATE members SET user_id ="
    " (SELECT id FROM users WHERE user_name = 'bob@contoso.com')",
    "members-delete": "DELETE FROM members",
}


@pytest.mark.parametrize("statement", APPLICATION_WRITES.values(), ids=APPLICATION_WRITES.keys())
def test_an_application_writing_directly_moves_the_marker(
    target: SqliteDirectory, policy: Policy, statement: str
) -> None:
    populate(target)
    before = marker(target)
    with sqlite3.connect(path_of(policy), isolation_level=None) as application:
        application.execute("PRAGMA foreign_keys=ON")
        application.execute("BEGIN")
        assert application.execute(statement).rowcount >= 1
        application.execute("ROLLBACK")  # an edit that never committed changed nothing
        assert marker(target) == before
        assert application.execute(statement).rowcount >= 1
    assert marker(target) != before


def test_a_recreated_database_never_repeats_a_marker(policy: Policy) -> None:
    path = path_of(policy)
    markers = []
    for _ in range(2):
        directory = SqliteDirectory(policy)
        try:
            populate(directory)
            markers.append(marker(directory))
        finally:
            directory.close()
        for leftover in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
        ):
            leftover.unlink(missing_ok=True)
    first, second = markers
    # The same writes, so the same count: only the database's identity tells them apart.
    assert first.rsplit(":", 1)[1] == second.rsplit(":", 1)[1]
    assert first != second


def version_1_database(path: Path) -> None:
    """A database as the previous syncctl left it, with a row an application wrote."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # syncctl always set it; it persists in the file
        conn.execute("BEGIN")
        for statement in statements(MIGRATIONS[0]):
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version(version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(
            "INSERT INTO users(id, user_name, active, attributes, version)"
            " VALUES ('app-1', 'legacy@contoso.com', 1, ?, 3)",
            (json.dumps({"userName": "legacy@contoso.com"}),),
        )
        conn.execute("COMMIT")


def test_a_version_1_database_is_migrated_and_then_counts(
    target: SqliteDirectory, policy: Policy
) -> None:
    path = path_of(policy)
    version_1_database(path)
    before = marker(target)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("SELECT id, version FROM users").fetchall() == [("app-1", 3)]
    assert marker(target) == before
    with sqlite3.connect(path) as application:
        application.execute("UPDATE users SET active = 0")
    after_application = marker(target)
    assert after_application != before
    target.apply([create(ChangeKind.USER, ALICE, "alice@contoso.com")], OWNER)
    assert marker(target) not in (before, after_application)


def test_migrating_at_once_from_several_processes_migrates_once(policy: Policy) -> None:
    path = path_of(policy)
    version_1_database(path)
    start = threading.Barrier(4)
    identities: list[str] = []
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            start.wait()
            conn = open_database(path)  # each its own connection, as separate processes
            try:
                (identity,) = conn.execute("SELECT database_id FROM change_counter").fetchone()
                identities.append(identity)
            finally:
                conn.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(identities) == 4
    assert len(set(identities)) == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM change_counter").fetchone() == (1,)
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_running_the_migration_again_changes_nothing(
    target: SqliteDirectory, policy: Policy
) -> None:
    populate(target)
    before = marker(target)
    with sqlite3.connect(path_of(policy), isolation_level=None) as conn:
        conn.execute("BEGIN IMMEDIATE")
        for statement in statements(MIGRATIONS[1]):
            conn.execute(statement)
        conn.execute("COMMIT")
        (counted,) = conn.execute("SELECT changes FROM change_counter").fetchone()
        conn.execute("UPDATE users SET active = 0 WHERE user_name = 'bob@contoso.com'")
        # One trigger per table and event, not two: one row written counts one.
        assert conn.execute("SELECT changes FROM change_counter").fetchone() == (counted + 1,)
    assert before.split(":", 1)[0] == marker(target).split(":", 1)[0]  # the same identity


@pytest.mark.parametrize(
    "sabotage",
    [
        "DROP TRIGGER members_counted_insert",
        "DELETE FROM change_counter",
        # An application's own migration rebuilding a table drops its triggers.
        "CREATE TABLE groups_new AS SELECT * FROM groups; DROP TABLE groups;"
        " ALTER TABLE groups_new RENAME TO groups",
    ],
    ids=["dropped-trigger", "emptied-counter", "rebuilt-table"],
)
def test_a_database_that_stopped_counting_has_no_marker(
    target: SqliteDirectory, policy: Policy, sabotage: str
) -> None:
    populate(target)
    assert marker(target)
    with sqlite3.connect(path_of(policy)) as application:
        application.executescript(sabotage)
    assert target.change_marker() is None


def test_reading_the_marker_is_one_lookup_that_does_not_wait_for_a_writer(
    target: SqliteDirectory, policy: Policy
) -> None:
    populate(target)
    committed = marker(target)
    conn = target._conn
    assert conn is not None
    executed: list[str] = []
    conn.set_trace_callback(executed.append)
    try:
        with sqlite3.connect(path_of(policy), isolation_level=None, timeout=0) as application:
            application.execute("BEGIN IMMEDIATE")
            application.execute("DELETE FROM members")
            # Uncommitted: not counted yet, and the read does not wait for the lock.
            assert marker(target) == committed
            application.execute("ROLLBACK")
    finally:
        conn.set_trace_callback(None)
    queries = [s for s in executed if s.lstrip().upper().startswith(("SELECT", "PRAGMA"))]
    assert len(queries) == 2, executed  # the schema cookie, then the counter row
    with sqlite3.connect(path_of(policy)) as inspect:
        for query in queries:
            plan = " ".join(str(r[3]) for r in inspect.execute(f"EXPLAIN QUERY PLAN {query}"))
            assert "SCAN" not in plan, (query, plan)


class _Run:
    """One property example: a populated database, and the writes and non-writes to try."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.target = SqliteDirectory(policy)
        self.serial = 0
        populate(self.target)

    def application(self, *statements: str, commit: bool = True) -> None:
        with sqlite3.connect(path_of(self.policy), isolation_level=None) as conn:
            conn.execute("BEGIN")
            for statement in statements:
                conn.execute(statement)
            conn.execute("COMMIT" if commit else "ROLLBACK")

    def perform(self, operation: str) -> bool:
        """Carry out ``operation``; True when it committed a write."""
        self.serial += 1
        n = self.serial
        if operation == "read":
            self.target.read(OWNER, ())
        elif operation == "empty-apply":
            self.target.apply([], OWNER)
        elif operation == "rerun-create":
            self.target.apply([create(ChangeKind.USER, ALICE, "alice@contoso.com")], OWNER)
        elif operation == "reopen":
            self.target.close()
            self.target = SqliteDirectory(self.policy)
        elif operation == "syncctl-create":
            self.target.apply([create(ChangeKind.USER, f"entra-{n}", f"u{n}@contoso.com")], OWNER)
            return True
        elif operation == "syncctl-membership":
            (admins,) = self.target.read(OWNER, ()).groups
            bob_in = len(self.target.read(OWNER, ()).members.get(admins.target_id, ())) == 2
            action = Action.REMOVE if bob_in else Action.ADD
            self.target.apply([member(action, ADMINS, BOB)], OWNER)
            return True
        elif operation == "application-insert":
            self.application(
                "INSERT INTO users(id, user_name, active, attributes, version)"
                f" VALUES ('app-{n}', 'app{n}@contoso.com', 1, '{{}}', 1)"
            )
            return True
        elif operation == "application-update":
            self.application("UPDATE users SET version = version + 1 WHERE id IS NOT NULL")
            return True
        elif operation == "application-insert-then-delete":
            self.application(
                "INSERT INTO groups(id, display_name, attributes, version)"
                f" VALUES ('tmp-{n}', 'Tmp', '{{}}', 1)",
                f"DELETE FROM groups WHERE id = 'tmp-{n}'",
            )
            return True  # the data is back as it was, but it was written: not "unchanged"
        elif operation == "application-matching-nothing":
            self.application(
                "UPDATE users SET active = 0 WHERE id = 'nobody'",
                "DELETE FROM members WHERE user_id = 'nobody'",
            )
        elif operation == "application-rolled-back":
            self.application("DELETE FROM members", "DELETE FROM users", commit=False)
        else:
            raise AssertionError(operation)
        return False


OPERATIONS = (
    "read",
    "empty-apply",
    "rerun-create",
    "reopen",
    "syncctl-create",
    "syncctl-membership",
    "application-insert",
    "application-update",
    "application-insert-then-delete",
    "application-matching-nothing",
    "application-rolled-back",
)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=10))
def test_marker_is_equal_exactly_when_nothing_was_written_in_between(
    operations: list[str],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = _Run(make_policy(Path(tmp), OWNER))
        try:
            seen = [marker(run.target)]
            for operation in operations:
                wrote = run.perform(operation)
                current = marker(run.target)
                assert (current != seen[-1]) == wrote, (operation, operations)
                if wrote:
                    assert current not in seen, (operation, operations)  # never comes back
                seen.append(current)
        finally:
            run.target.close()
