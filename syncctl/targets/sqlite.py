"""The embedded SQLite target: the documented schema applications read (ARCHITECTURE.md).

Storage choices (public, see docs/targets.md):
- ``attributes`` holds the SCIM-shaped resource JSON (``syncctl.scimpath.to_resource``:
  ``name.givenName`` is ``{"name": {"givenName": ...}}``, work email in ``emails``, enterprise
  attributes under their URN), without id/externalId/active, which have their own columns.
  ``read`` exposes it as flat paths (the policy's mapped and match paths).
- ``version`` starts at 1 and is bumped on every write to the row, including membership
  changes of a group; saved plans and ``Change.version`` compare it.
- One transaction per ``apply`` batch. Each change is at most one write statement, which
  SQLite undoes by itself when it fails, so a rejected change is reported alone while the
  rest of the batch commits.
- Triggers count every row written to the data tables, whoever writes it, so
  ``change_marker`` tells without reading whether anything changed.

This module is the Target itself. The schema, its migrations and connection setup are
sqlite_schema; reading is sqlite_read; writing a batch is sqlite_write (merging updates into
the stored JSON: sqlite_merge); the change marker is sqlite_marker.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Sequence

from syncctl.errors import TargetError
from syncctl.mapping import target_paths
from syncctl.model import ObjectKind, TargetSnapshot
from syncctl.plan.model import Change
from syncctl.policy.model import Policy, SqliteTarget
from syncctl.targets.base import Capabilities, Outcome
from syncctl.targets.sqlite_marker import MarkerReader
from syncctl.targets.sqlite_merge import merge_resource
from syncctl.targets.sqlite_read import read_snapshot
from syncctl.targets.sqlite_schema import (
    KEY_PATH,
    MIGRATIONS,
    SCHEMA_VERSION,
    database_exists,
    open_database,
)
from syncctl.targets.sqlite_write import write_batch

__all__ = [
    "KEY_PATH",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SqliteDirectory",
    "database_exists",
    "merge_resource",
    "open_database",
]


class SqliteDirectory:
    """``target: {type: sqlite, path: ...}`` — see the module docstring."""

    def __init__(self, policy: Policy) -> None:
        if not isinstance(policy.target, SqliteTarget):
            raise TargetError(f'policy "{policy.name}": target is not sqlite')
        self.path = policy.target.path
        self._paths = {
            ObjectKind.USER: target_paths(policy, ObjectKind.USER),
            ObjectKind.GROUP: target_paths(policy, ObjectKind.GROUP),
        }
        self._conn: sqlite3.Connection | None = None
        self._marker = MarkerReader()
        self._mutex = threading.Lock()

    # -- Target protocol -------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        # One writer at a time is what SQLite allows anyway. Big batches amortise the commit
        # (random uuid keys dirty a page per row); 2,000 changes still commit in well under a
        # second, so other writers of the same file wait briefly and a crash redoes little.
        return Capabilities(
            max_batch=2000, parallel_safe=False, versions=True, marks_ownership=True
        )

    def read(self, owner: str, known_ids: Collection[str]) -> TargetSnapshot:
        """Everything in the database. Ownership is the ``managed_by`` column, so
        ``known_ids`` is not needed here. A database that does not exist yet reads as an
        empty directory and is not created: planning changes nothing, apply creates it."""
        with self._mutex:
            if self._conn is None and not database_exists(self.path):
                return TargetSnapshot(users=(), groups=(), members={})
            return read_snapshot(self._connection(), self.path, self._paths)

    def apply(self, changes: Sequence[Change], owner: str) -> list[Outcome]:
        with self._mutex:
            return write_batch(self._connection(), self.path, changes, owner)

    def change_marker(self) -> str | None:
        """``<database id>:<schema cookie>:<rows written>`` (sqlite_marker). A database that
        does not exist yet has none and is not created (it reads as empty)."""
        with self._mutex:
            if self._conn is None and not database_exists(self.path):
                return None
            conn = self._connection()
            try:
                return self._marker.read(conn)
            except sqlite3.Error as exc:
                raise TargetError(
                    f"sqlite {self.path}: cannot read the change marker: {exc}"
                ) from None

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- internals -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_database(self.path)
        return self._conn
