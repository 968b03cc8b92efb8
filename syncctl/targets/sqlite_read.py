"""Reading the SQLite target: every row, as flat SCIM paths (the policy's mapped and match
paths), in one consistent view across the three tables."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from syncctl.errors import TargetError
from syncctl.model import ObjectKind, TargetObject, TargetSnapshot
from syncctl.scimpath import from_resource
from syncctl.targets.sqlite_schema import KEY_PATH, TABLE


def read_snapshot(
    conn: sqlite3.Connection, path: Path, paths: dict[ObjectKind, tuple[str, ...]]
) -> TargetSnapshot:
    try:
        conn.execute("BEGIN")  # one consistent view across the three tables
        try:
            users = tuple(
                _to_object(path, paths, ObjectKind.USER, r)
                for r in conn.execute(
                    "SELECT id, external_id, user_name, active, attributes, managed_by,"
                    " version FROM users ORDER BY id"
                )
            )
            groups = tuple(
                _to_object(path, paths, ObjectKind.GROUP, r)
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
        raise TargetError(f"sqlite {path}: cannot read: {exc}") from None
    return TargetSnapshot(
        users=users,
        groups=groups,
        members={g: frozenset(m) for g, m in members.items()},
    )


def _to_object(
    path: Path, paths: dict[ObjectKind, tuple[str, ...]], kind: ObjectKind, row: tuple[Any, ...]
) -> TargetObject:
    target_id, external_id, key, active, attributes, managed_by, version = row
    try:
        resource = json.loads(attributes)
    except ValueError:
        raise TargetError(
            f"sqlite {path}: {TABLE[kind]} row {target_id}: attributes is not JSON"
        ) from None
    flat = from_resource(resource, paths[kind])
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
