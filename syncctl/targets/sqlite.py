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
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncctl.errors import TargetError
from syncctl.model import ObjectKind, TargetObject, TargetSnapshot
from syncctl.plan.model import Action, Change, ChangeKind
from syncctl.policy.model import Policy, SqliteTarget
from syncctl.scimpath import from_resource, to_resource
from syncctl.targets.base import Capabilities, Outcome, OutcomeStatus

SCHEMA_VERSION = 1

# Forward-only migrations: index i brings the database from version i to i + 1.
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
)

KEY_PATH = {ObjectKind.USER: "userName", ObjectKind.GROUP: "displayName"}
_TABLE = {ObjectKind.USER: "users", ObjectKind.GROUP: "groups"}
_KEY_COLUMN = {ObjectKind.USER: "user_name", ObjectKind.GROUP: "display_name"}


class _Failed(Exception):
    """One change cannot be applied; becomes a FAILED or STALE outcome, not an error."""

    def __init__(self, message: str, status: OutcomeStatus = OutcomeStatus.FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    external_id: str | None
    key: str
    active: bool
    resource: dict[str, Any]
    managed_by: str | None
    version: int


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # Look first without the write lock: a plan must not wait for (or block) a writer of a
    # database that is current already. Migrating re-checks under the lock.
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
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version(version) VALUES (?)", (version + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SqliteDirectory:
    """``target: {type: sqlite, path: ...}`` — see the module docstring."""

    def __init__(self, policy: Policy) -> None:
        if not isinstance(policy.target, SqliteTarget):
            raise TargetError(f'policy "{policy.name}": target is not sqlite')
        self.path = policy.target.path
        self._paths = {
            ObjectKind.USER: _paths_of(policy, ObjectKind.USER),
            ObjectKind.GROUP: _paths_of(policy, ObjectKind.GROUP),
        }
        self._conn: sqlite3.Connection | None = None
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
            conn = self._connection()
            try:
                conn.execute("BEGIN")  # one consistent view across the three tables
                try:
                    users = tuple(
                        self._to_object(ObjectKind.USER, r)
                        for r in conn.execute(
                            "SELECT id, external_id, user_name, active, attributes, managed_by,"
                            " version FROM users ORDER BY id"
                        )
                    )
                    groups = tuple(
                        self._to_object(ObjectKind.GROUP, r)
                        for r in conn.execute(
                            "SELECT id, external_id, display_name, 1, attributes, managed_by,"
                            " version FROM groups ORDER BY id"
                        )
                    )
                    members: dict[str, set[str]] = {}
                    for group_id, user_id in conn.execute("SELECT group_id, user_id FROM members"):
                        members.setdefault(group_id, set()).add(user_id)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise TargetError(f"sqlite {self.path}: cannot read: {exc}") from None
        return TargetSnapshot(
            users=users,
            groups=groups,
            members={g: frozenset(m) for g, m in members.items()},
        )

    def apply(self, changes: Sequence[Change], owner: str) -> list[Outcome]:
        with self._mutex:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                batch = _Batch(conn, owner, _now(), changes)
                outcomes = [batch.run(change) for change in changes]
                batch.bump_touched_groups()
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise TargetError(f"sqlite {self.path}: batch failed: {exc}") from None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return outcomes

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

    def _to_object(self, kind: ObjectKind, row: tuple[Any, ...]) -> TargetObject:
        target_id, external_id, key, active, attributes, managed_by, version = row
        try:
            resource = json.loads(attributes)
        except ValueError:
            raise TargetError(
                f"sqlite {self.path}: {_TABLE[kind]} row {target_id}: attributes is not JSON"
            ) from None
        flat = from_resource(resource, self._paths[kind])
        flat[KEY_PATH[kind]] = key  # the column is authoritative for the key
        return TargetObject(
            kind=kind,
            target_id=target_id,
            external_id=external_id,
            key=key,
            active=bool(active),
            attributes=flat,
            managed_by=managed_by,
            version=str(version),
        )


def _paths_of(policy: Policy, kind: ObjectKind) -> tuple[str, ...]:
    mappings = policy.mappings.user if kind is ObjectKind.USER else policy.mappings.group
    paths = {m.target for m in mappings.attributes} | set(mappings.match) | {KEY_PATH[kind]}
    return tuple(sorted(paths))


_MARK = "\x00syncctl-marker\x00"


def merge_resource(
    old: dict[str, Any], changes: dict[str, Any], kind: ObjectKind
) -> dict[str, Any]:
    """``old`` with the flat ``changes`` applied (a None value removes the attribute).

    Each path is turned into its resource fragment by the one path codec (``to_resource``)
    and merged leaf by leaf, so everything else in the row survives: attributes an
    application stored itself, other-typed emails, an adopted row's own data.
    """
    merged = copy.deepcopy(old)
    schemas = set(merged.get("schemas") or ())
    for path in sorted(changes):
        value = changes[path]
        fragment = to_resource({path: _MARK}, kind)
        _merge_fragment(merged, fragment, value)
        if value is not None:
            schemas.update(fragment["schemas"])
    core = to_resource({}, kind)["schemas"][0]
    merged["schemas"] = [core, *sorted(schemas - {core})]
    return merged


def _merge_fragment(target: dict[str, Any], fragment: dict[str, Any], value: Any) -> None:
    for key, part in fragment.items():
        if key == "schemas":
            continue
        if isinstance(part, dict):
            inner = target.get(key)
            if not isinstance(inner, dict):
                if value is None:
                    continue
                inner = target[key] = {}
            _merge_fragment(inner, part, value)
            if not inner:
                del target[key]
        elif isinstance(part, list):
            _merge_element(target, key, part[0], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _merge_element(target: dict[str, Any], key: str, pattern: dict[str, Any], value: Any) -> None:
    """One typed element of a multi-valued attribute (``emails[type eq "work"].value``)."""
    (sub,) = [k for k, v in pattern.items() if v == _MARK]
    selector = {k: v for k, v in pattern.items() if k != sub}
    elements = target.get(key)
    if not isinstance(elements, list):
        if value is None:
            return
        elements = target[key] = []

    def matches(element: Any) -> bool:
        return isinstance(element, dict) and all(
            str(element.get(k, "")).lower() == str(v).lower() for k, v in selector.items()
        )

    element = next((e for e in elements if matches(e)), None)
    if value is None:
        if element is not None:
            element.pop(sub, None)
            if not set(element) - set(selector) - {"primary"}:
                elements.remove(element)
        if not elements:
            del target[key]
    elif element is None:
        elements.append({**selector, sub: value})
    else:
        element[sub] = value


class _Batch:
    """The changes of one ``apply`` call inside one transaction.

    Every change performs at most one write statement, and SQLite rolls back a failing
    statement on its own, so a rejected change leaves no trace and needs no savepoint.
    Entra-id -> row-id lookups for the whole batch are fetched up front (one query per kind
    instead of two per membership change): the batch holds the write lock, so they stay true
    while it runs, and the batch keeps them current as it creates, adopts and deletes.
    """

    def __init__(
        self, conn: sqlite3.Connection, owner: str, now: str, changes: Sequence[Change]
    ) -> None:
        self.conn = conn
        self.owner = owner
        self.now = now
        self.touched_groups: set[str] = set()
        self._ids: dict[ObjectKind, dict[str, tuple[str, str | None]]] = {
            ObjectKind.USER: {},
            ObjectKind.GROUP: {},
        }
        wanted: dict[ObjectKind, set[str]] = {ObjectKind.USER: set(), ObjectKind.GROUP: set()}
        for change in changes:
            if change.kind is ChangeKind.MEMBERSHIP:
                wanted[ObjectKind.GROUP].add(change.group or "")
                wanted[ObjectKind.USER].add(change.user or "")
            elif change.source_id is not None:
                kind = ObjectKind.USER if change.kind is ChangeKind.USER else ObjectKind.GROUP
                wanted[kind].add(change.source_id)
        for kind, external_ids in wanted.items():
            self._prefetch(kind, sorted(external_ids))

    def _prefetch(self, kind: ObjectKind, external_ids: list[str]) -> None:
        chunk = 900  # below SQLite's default limit of host parameters
        for start in range(0, len(external_ids), chunk):
            part = external_ids[start : start + chunk]
            marks = ",".join("?" * len(part))
            for external_id, row_id, managed_by in self.conn.execute(
                f"SELECT external_id, id, managed_by FROM {_TABLE[kind]}"
                f" WHERE external_id IN ({marks})",
                part,
            ):
                self._ids[kind][external_id] = (row_id, managed_by)

    def run(self, change: Change) -> Outcome:
        try:
            return self._dispatch(change)
        except _Failed as failure:
            return Outcome(change.address, failure.status, change.target_id, str(failure))
        except sqlite3.IntegrityError as exc:
            return Outcome(change.address, OutcomeStatus.FAILED, change.target_id, _why(exc))

    def _dispatch(self, change: Change) -> Outcome:
        if change.kind is ChangeKind.MEMBERSHIP:
            if change.action is Action.ADD:
                return self._member_add(change)
            if change.action is Action.REMOVE:
                return self._member_remove(change)
            raise _Failed(f"membership changes cannot {change.action}")
        kind = ObjectKind.USER if change.kind is ChangeKind.USER else ObjectKind.GROUP
        action = change.action
        if action is Action.CREATE:
            return self._create(kind, change)
        if action is Action.ADOPT:
            return self._adopt(kind, change)
        if action in (Action.UPDATE, Action.ENABLE, Action.DISABLE):
            return self._update(kind, change)
        if action is Action.DELETE:
            return self._delete(kind, change)
        raise _Failed(f"{change.kind} changes cannot {action}")

    # -- rows ------------------------------------------------------------------------------

    def _row(self, kind: ObjectKind, column: str, value: str) -> _Row | None:
        active = "active" if kind is ObjectKind.USER else "1"
        found = self.conn.execute(
            f"SELECT id, external_id, {_KEY_COLUMN[kind]}, {active}, attributes, managed_by,"
            f" version FROM {_TABLE[kind]} WHERE {column} = ?",
            (value,),
        ).fetchone()
        if found is None:
            return None
        return _Row(
            found[0], found[1], found[2], bool(found[3]), json.loads(found[4]), found[5], found[6]
        )

    def _managed_row(self, kind: ObjectKind, change: Change) -> _Row | None:
        row = None
        if change.target_id is not None:
            row = self._row(kind, "id", change.target_id)
        if row is None and change.source_id is not None:
            row = self._row(kind, "external_id", change.source_id)
        if row is not None and row.managed_by != self.owner:
            raise _Failed(
                f"{_TABLE[kind]} row {row.id} is not managed by policy "
                f'"{self.owner}" (managed_by {row.managed_by!r}); not touched'
            )
        return row

    def _check_version(self, row: _Row, change: Change) -> None:
        if change.version is not None and str(row.version) != change.version:
            raise _Failed(
                f"{change.kind} {row.id} changed on the target since planning "
                f"(version {change.version} -> {row.version})",
                OutcomeStatus.STALE,
            )

    def _write(
        self,
        kind: ObjectKind,
        row: _Row,
        resource: dict[str, Any],
        *,
        active: bool,
        external_id: str | None,
    ) -> Outcome | None:
        """Write the row if anything differs; None when it already matches (idempotent)."""
        key = resource.get(KEY_PATH[kind], row.key)
        if (
            resource == row.resource
            and active == row.active
            and external_id == row.external_id
            and row.managed_by == self.owner
            and key == row.key
        ):
            return None
        table, key_column = _TABLE[kind], _KEY_COLUMN[kind]
        active_sql = ", active = ?" if kind is ObjectKind.USER else ""
        params: list[Any] = [key, json.dumps(resource, sort_keys=True), external_id, self.owner]
        if kind is ObjectKind.USER:
            params.append(int(active))
        params += [self.now, row.id]
        self.conn.execute(
            f"UPDATE {table} SET {key_column} = ?, attributes = ?, external_id = ?,"
            f" managed_by = ?{active_sql}, updated_at = ?, version = version + 1 WHERE id = ?",
            params,
        )
        return Outcome("", OutcomeStatus.APPLIED, row.id)

    # -- actions ---------------------------------------------------------------------------

    def _create(self, kind: ObjectKind, change: Change) -> Outcome:
        if change.source_id is None:
            raise _Failed("create without an Entra id")
        flat = {a.path: a.after for a in change.attributes}
        existing = (
            self._row(kind, "external_id", change.source_id)
            if change.source_id in self._ids[kind]
            else None
        )
        if existing is not None:
            # A re-run after a crash: the object is there already; make it match.
            if existing.managed_by != self.owner:
                raise _Failed(
                    f"Entra id {change.source_id} is already on the target, managed by "
                    f"{existing.managed_by!r}; not touched"
                )
            resource = merge_resource(existing.resource, flat, kind)
            written = self._write(
                kind, existing, resource, active=True, external_id=change.source_id
            )
            status = OutcomeStatus.UNCHANGED if written is None else OutcomeStatus.APPLIED
            return Outcome(change.address, status, existing.id)
        resource = to_resource({p: v for p, v in flat.items() if v is not None}, kind)
        key = resource.get(KEY_PATH[kind]) or change.address.split("/", 1)[-1]
        resource[KEY_PATH[kind]] = key
        new_id = str(uuid.uuid4())
        if kind is ObjectKind.USER:
            self.conn.execute(
                "INSERT INTO users(id, external_id, user_name, active, attributes, managed_by,"
                " created_at, updated_at, version) VALUES (?, ?, ?, 1, ?, ?, ?, ?, 1)",
                (
                    new_id,
                    change.source_id,
                    key,
                    json.dumps(resource, sort_keys=True),
                    self.owner,
                    self.now,
                    self.now,
                ),
            )
        else:
            self.conn.execute(
                "INSERT INTO groups(id, external_id, display_name, attributes, managed_by,"
                " created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                (
                    new_id,
                    change.source_id,
                    key,
                    json.dumps(resource, sort_keys=True),
                    self.owner,
                    self.now,
                    self.now,
                ),
            )
        self._ids[kind][change.source_id] = (new_id, self.owner)
        return Outcome(change.address, OutcomeStatus.APPLIED, new_id)

    def _adopt(self, kind: ObjectKind, change: Change) -> Outcome:
        if change.source_id is None or change.target_id is None:
            raise _Failed("adopt needs both the Entra id and the target id")
        row = self._row(kind, "id", change.target_id)
        if row is None:
            raise _Failed(f"{_TABLE[kind]} row {change.target_id} to adopt is gone")
        if row.managed_by not in (None, self.owner) or row.external_id not in (
            None,
            change.source_id,
        ):
            raise _Failed(
                f"{_TABLE[kind]} row {row.id} was claimed since planning (managed_by "
                f"{row.managed_by!r}, external_id {row.external_id!r}); not adopted"
            )
        if row.managed_by != self.owner:
            self._check_version(row, change)  # a re-run after the adopt committed skips this
        flat = {a.path: a.after for a in change.attributes}
        resource = merge_resource(row.resource, flat, kind)
        written = self._write(kind, row, resource, active=True, external_id=change.source_id)
        self._ids[kind][change.source_id] = (row.id, self.owner)
        status = OutcomeStatus.UNCHANGED if written is None else OutcomeStatus.APPLIED
        return Outcome(change.address, status, row.id)

    def _update(self, kind: ObjectKind, change: Change) -> Outcome:
        row = self._managed_row(kind, change)
        if row is None:
            raise _Failed(f"{change.address} is no longer on the target")
        flat = {a.path: a.after for a in change.attributes}
        resource = merge_resource(row.resource, flat, kind) if flat else row.resource
        active = row.active
        if change.action is Action.DISABLE:
            active = False
        elif change.action is Action.ENABLE:
            active = True
        if resource == row.resource and active == row.active:
            return Outcome(change.address, OutcomeStatus.UNCHANGED, row.id)
        self._check_version(row, change)
        self._write(kind, row, resource, active=active, external_id=row.external_id)
        return Outcome(change.address, OutcomeStatus.APPLIED, row.id)

    def _delete(self, kind: ObjectKind, change: Change) -> Outcome:
        row = self._managed_row(kind, change)
        if row is None:
            return Outcome(change.address, OutcomeStatus.UNCHANGED, change.target_id)
        self._check_version(row, change)
        self.conn.execute(f"DELETE FROM {_TABLE[kind]} WHERE id = ?", (row.id,))
        self.touched_groups.discard(row.id)
        if row.external_id is not None:
            self._ids[kind].pop(row.external_id, None)
        return Outcome(change.address, OutcomeStatus.APPLIED, row.id)

    def _member_ids(self, change: Change) -> tuple[str | None, str | None]:
        if change.group is None or change.user is None:
            raise _Failed("membership change without group and user Entra ids")
        group = self._ids[ObjectKind.GROUP].get(change.group)
        if group is not None and group[1] != self.owner:
            raise _Failed(f'group {group[0]} is not managed by policy "{self.owner}"')
        user = self._ids[ObjectKind.USER].get(change.user)
        return (None if group is None else group[0]), (None if user is None else user[0])

    def _member_add(self, change: Change) -> Outcome:
        group_id, user_id = self._member_ids(change)
        if group_id is None:
            raise _Failed(f"group with Entra id {change.group} is not on the target")
        if user_id is None:
            raise _Failed(f"user with Entra id {change.user} is not on the target")
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO members(group_id, user_id) VALUES (?, ?)", (group_id, user_id)
        )
        if cursor.rowcount == 0:
            return Outcome(change.address, OutcomeStatus.UNCHANGED)
        self.touched_groups.add(group_id)
        return Outcome(change.address, OutcomeStatus.APPLIED)

    def _member_remove(self, change: Change) -> Outcome:
        group_id, user_id = self._member_ids(change)
        if group_id is None or user_id is None:
            return Outcome(change.address, OutcomeStatus.UNCHANGED)
        cursor = self.conn.execute(
            "DELETE FROM members WHERE group_id = ? AND user_id = ?", (group_id, user_id)
        )
        if cursor.rowcount == 0:
            return Outcome(change.address, OutcomeStatus.UNCHANGED)
        self.touched_groups.add(group_id)
        return Outcome(change.address, OutcomeStatus.APPLIED)

    def bump_touched_groups(self) -> None:
        """Membership is part of a group: one version bump per group per batch."""
        self.conn.executemany(
            "UPDATE groups SET version = version + 1, updated_at = ? WHERE id = ?",
            [(self.now, g) for g in sorted(self.touched_groups)],
        )


def _why(exc: sqlite3.IntegrityError) -> str:
    text = str(exc)
    if "users.user_name" in text:
        return "a user with this userName already exists on the target (not managed by this policy)"
    if "external_id" in text:
        return "another row already has this Entra id as external_id"
    return f"rejected by the database: {text}"
