"""The SQLite target's change marker: ``<database id>:<schema cookie>:<rows written>``.

The triggers of schema version 2 count every row written to the data tables, by syncctl or
by an application with any SQLite client, in the writer's own transaction. The database id
is random per database, so a re-created file never repeats an old marker. SQLite's schema
cookie (``PRAGMA schema_version``) goes up on every schema change: a table rebuilt by an
application's own migration (which drops its triggers) changes the marker, and the triggers
are checked again before a marker under the new schema is trusted.
"""

from __future__ import annotations

import sqlite3

from syncctl.targets.sqlite_schema import COUNTED_EVENTS, COUNTED_TABLES, counting_trigger

_EXPECTED = frozenset(
    counting_trigger(table, event) for table in COUNTED_TABLES for event in COUNTED_EVENTS
)


class MarkerReader:
    """Reads the marker on one connection; remembers the schema cookie it checked."""

    def __init__(self) -> None:
        self._checked_cookie: int | None = None

    def read(self, conn: sqlite3.Connection) -> str | None:
        """None when the database no longer counts (an application dropped the counter or
        a trigger): the caller must read it."""
        conn.execute("BEGIN")  # the cookie and the counter from one snapshot
        try:
            (cookie,) = conn.execute("PRAGMA schema_version").fetchone()
            if cookie != self._checked_cookie:
                if not _counting(conn):
                    return None
                self._checked_cookie = cookie
            # The primary key lookup of the one counter row: never a scan of the data.
            row = conn.execute(
                "SELECT database_id, changes FROM change_counter WHERE id = 1"
            ).fetchone()
        finally:
            conn.execute("COMMIT")
        if row is None:
            return None
        return f"{row[0]}:{cookie}:{row[1]}"


def _counting(conn: sqlite3.Connection) -> bool:
    """The counter table and every counting trigger are there (sqlite_master is the schema:
    a handful of rows, whatever the size of the directory)."""
    names = {
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')"
        )
    }
    return names >= _EXPECTED | {"change_counter"}
