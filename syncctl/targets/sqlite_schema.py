"""The SQLite target's public schema, its forward-only migrations and connection setup.

Applications read (and write) this database directly, so everything here is a public
interface (docs/targets.md): tables, columns, the ``schema_version`` table and, from version 2,
the ``change_counter`` row the triggers keep (see ``sqlite_marker``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from syncctl.errors import TargetError
from syncctl.model import ObjectKind

SCHEMA_VERSION = 2

KEY_PATH = {ObjectKind.USER: "userName", ObjectKind.GROUP: "displayName"}
TABLE = {ObjectKind.USER: "users", ObjectKind.GROUP: "groups"}
KEY_COLUMN = {ObjectKind.USER: "user_name", ObjectKind.GROUP: "display_name"}

# The tables holding directory data; every write to them is counted. A table added later
# gets its counting triggers in its own migration (migrations never change once released).
COUNTED_TABLES = ("users", "groups", "members")
COUNTED_EVENTS = ("insert", "update", "delete")


def counting_trigger(table: str, event: str) -> str:
    return f"{table}_counted_{event}"


def _counting_triggers(tables: tuple[str, ...]) -> str:
    # FOR EACH ROW is all SQLite has: one single-row UPDATE per written row cost about 4 % more
    # CPU in bench_core's 402,000-change apply. It runs in the writer's transaction, so an
    # application's rolled-back edit is not counted and a committed one always is.
    return "".join(
        f"CREATE TRIGGER IF NOT EXISTS {counting_trigger(table, event)}"
        f" AFTER {event.upper()} ON {table}"
        " BEGIN UPDATE change_counter SET changes = changes + 1 WHERE id = 1; END;\n"
        for table in tables
        for event in COUNTED_EVENTS
    )


# Forward-only migrations: index i brings the database from version i to i + 1. Each runs in
# the migrating process's write transaction and is written to be idempotent (IF NOT EXISTS,
# OR IGNORE), so a half-known state can never make it fail or run twice.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users(
        id TEXT PRIMARY KEY,
        external_id TEXT UNIQUE,
        user_name TEXT NOT NULL UNIQUE,
        active INTEGER NOT NULL,
        attributes TEXT NOT NULL,
        managed_by TEXT,
        created_at TEXT,
        updated_at TEXT,
        version INTEGER NOT NULL
    );
    CREATE TABLE groups(
        id TEXT PRIMARY KEY,
        external_id TEXT UNIQUE,
        display_name TEXT NOT NULL,
        attributes TEXT NOT NULL,
        managed_by TEXT,
        created_at TEXT,
        updated_at TEXT,
        version INTEGER NOT NULL
    );
    CREATE TABLE members(
        group_id TEXT REFERENCES groups(id) ON DELETE CASCADE,
        user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, user_id)
    );
    -- deleting a user cascades into members: without this index every delete scans members
    CREATE INDEX members_user_id ON members(user_id);
    """,
    """
    -- One row: a random identity of this database (a re-created file gets a new one) and
    -- the number of rows written to the data tables since.
    CREATE TABLE IF NOT EXISTS change_counter(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        database_id TEXT NOT NULL,
        changes INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO change_counter(id, database_id, changes)
        VALUES (1, lower(hex(randomblob(16))), 0);
    """
    + _counting_triggers(("users", "groups", "members")),
)


def database_exists(path: Path) -> bool:
    """False only when nothing is at ``path`` (nor its parent directory); errors such as
    EACCES count as present, so that opening it reports them."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it: it holds names and e-mail
    addresses, and SQLite gives its -wal and -shm files the database file's mode. An
    existing file keeps its mode (an administrator may have granted an application read)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating as needed) a syncctl SQLite database."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise TargetError(f"sqlite {path}: cannot open database: {exc}") from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # NORMAL in WAL mode survives a killed process (only power loss can drop the last
        # commit, and a re-run converges anyway).
        conn.execute("PRAGMA synchronous=NORMAL")
        # Random uuid keys touch index pages all over the file: keep them in memory (64 MiB)
        # instead of SQLite's 2 MiB default, or large applies thrash.
        conn.execute("PRAGMA cache_size=-65536")
        # Checkpointing after every 4 MiB of WAL (the default) rewrote the same index pages
        # again and again: a 300,000-membership apply took twice as long. 40 MiB instead.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        _migrate(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise TargetError(f"sqlite {path}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _schema_version(conn: sqlite3.Connection) -> int:
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone():
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def statements(script: str) -> list[str]:
    """The SQL statements of a migration script. ``executescript`` would commit the
    migration's transaction first, and a plain split on ";" would cut trigger bodies."""
    found: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    return found


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # Look first without the write lock: a plan must not wait for (or block) a writer of a
    # database that is current already. Migrating re-checks under the lock, so of two
    # processes migrating at once the second finds the work done.
    if _schema_version(conn) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)")
        current = _schema_version(conn)
        if current > SCHEMA_VERSION:
            raise TargetError(
                f"sqlite {path}: database schema version {current} is newer than this "
                f"syncctl supports ({SCHEMA_VERSION}); upgrade syncctl"
            )
        for version in range(current, SCHEMA_VERSION):
            for statement in statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version(version) VALUES (?)", (version + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
