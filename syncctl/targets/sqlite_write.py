"""Writing one ``apply`` batch into the SQLite target: one transaction per batch.

Each change is at most one write statement, which SQLite undoes by itself when it fails, so
a rejected change is reported alone while the rest of the batch commits. ``version`` is
bumped on every write to a row, and once per batch for each group whose members changed.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncctl.errors import TargetError
from syncctl.model import ObjectKind
from syncctl.plan.model import Action, Change, ChangeKind
from syncctl.scimpath import to_resource
from syncctl.targets.base import Outcome, OutcomeStatus
from syncctl.targets.sqlite_merge import merge_resource
from syncctl.targets.sqlite_schema import KEY_COLUMN, KEY_PATH, TABLE


def write_batch(
    conn: sqlite3.Connection, path: Path, changes: Sequence[Change], owner: str
) -> list[Outcome]:
    """One Outcome per change, in order; the whole batch is one transaction."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        batch = _Batch(conn, owner, _now(), changes)
        outcomes = [batch.run(change) for change in changes]
        batch.bump_touched_groups()
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise TargetError(f"sqlite {path}: batch failed: {exc}") from None
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


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
                f"SELECT external_id, id, managed_by FROM {TABLE[kind]}"
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
            f"SELECT id, external_id, {KEY_COLUMN[kind]}, {active}, attributes, managed_by,"
            f" version FROM {TABLE[kind]} WHERE {column} = ?",
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
                f"{TABLE[kind]} row {row.id} is not managed by policy "
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
        table, key_column = TABLE[kind], KEY_COLUMN[kind]
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
        # Users have an active column (a new one is active); groups are always active.
        column, value = ("active, ", "1, ") if kind is ObjectKind.USER else ("", "")
        self.conn.execute(
            f"INSERT INTO {TABLE[kind]}(id, external_id, {KEY_COLUMN[kind]}, {column}"
            "attributes, managed_by, created_at, updated_at, version)"
            f" VALUES (?, ?, ?, {value}?, ?, ?, ?, 1)",
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
            raise _Failed(f"{TABLE[kind]} row {change.target_id} to adopt is gone")
        if row.managed_by not in (None, self.owner) or row.external_id not in (
            None,
            change.source_id,
        ):
            raise _Failed(
                f"{TABLE[kind]} row {row.id} was claimed since planning (managed_by "
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
        self.conn.execute(f"DELETE FROM {TABLE[kind]} WHERE id = ?", (row.id,))
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
