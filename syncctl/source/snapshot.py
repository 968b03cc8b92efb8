"""Snapshot files: a SourceSnapshot as deterministic JSON (``schemas/snapshot.schema.json``).

``syncctl export`` writes one; ``tenant.snapshot`` reads it back so reviews and the demo can
plan offline. Writing is atomic (a temporary file in the same directory, then ``os.replace``)
so a crash never leaves half a snapshot where a policy expects a whole one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from syncctl.errors import SnapshotError
from syncctl.fileio import write_text_atomic
from syncctl.model import RemovalReason, SourceGroup, SourceSnapshot, SourceUser
from syncctl.schemafiles import first_error, load_schema

FORMAT_VERSION = 1
SCHEMA_ID = "https://syncctl.dev/schemas/snapshot.schema.json"


def snapshot_schema() -> dict[str, Any]:
    return load_schema("snapshot")


def snapshot_to_json(snapshot: SourceSnapshot) -> dict[str, Any]:
    """The file form: every array sorted by id, member lists sorted, so equal snapshots are
    byte-identical files (diffable in Git, stable plan fingerprints)."""
    return {
        "$schema": SCHEMA_ID,
        "format_version": FORMAT_VERSION,
        "tenant": snapshot.tenant,
        "users": [
            {"id": user_id, "attributes": dict(snapshot.users[user_id].attributes)}
            for user_id in sorted(snapshot.users)
        ],
        "groups": [
            {
                "id": group_id,
                "attributes": dict(snapshot.groups[group_id].attributes),
                "members": sorted(set(snapshot.groups[group_id].members)),
            }
            for group_id in sorted(snapshot.groups)
        ],
        "removed": [
            {"id": object_id, "reason": str(snapshot.removed[object_id])}
            for object_id in sorted(snapshot.removed)
        ],
    }


def dumps_snapshot(snapshot: SourceSnapshot) -> str:
    document = snapshot_to_json(snapshot)
    _validate(document, "<snapshot being written>")
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_snapshot(snapshot: SourceSnapshot, path: Path) -> None:
    """Write ``snapshot`` to ``path`` atomically; the same snapshot always gives the same bytes."""
    text = dumps_snapshot(snapshot)
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot write snapshot: {exc.strerror}") from None


def load_snapshot(path: Path) -> SourceSnapshot:
    """Read and validate a snapshot file; any problem is a one-line SnapshotError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SnapshotError(f"{path}: snapshot is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    return snapshot_from_json(document, str(path))


def snapshot_from_json(document: Any, where: str) -> SourceSnapshot:
    _validate(document, where)
    users: dict[str, SourceUser] = {}
    for entry in document["users"]:
        _check_identity(entry, where, "user")
        if entry["id"] in users:
            raise SnapshotError(f"{where}: user {entry['id']} appears twice")
        users[entry["id"]] = SourceUser(id=entry["id"], attributes=entry["attributes"])
    groups: dict[str, SourceGroup] = {}
    for entry in document["groups"]:
        _check_identity(entry, where, "group")
        if entry["id"] in groups or entry["id"] in users:
            raise SnapshotError(f"{where}: object {entry['id']} appears twice")
        groups[entry["id"]] = SourceGroup(
            id=entry["id"], attributes=entry["attributes"], members=tuple(sorted(entry["members"]))
        )
    removed: dict[str, RemovalReason] = {}
    for entry in document["removed"]:
        object_id = entry["id"]
        if object_id in removed:
            raise SnapshotError(f"{where}: removed object {object_id} appears twice")
        if object_id in users or object_id in groups:
            # A present object cannot also have left: refuse rather than guess which is true.
            raise SnapshotError(f"{where}: removed object {object_id} is also listed as present")
        removed[object_id] = RemovalReason(entry["reason"])
    return SourceSnapshot(tenant=document["tenant"], users=users, groups=groups, removed=removed)


def _check_identity(entry: dict[str, Any], where: str, kind: str) -> None:
    if entry["attributes"]["id"] != entry["id"]:
        raise SnapshotError(
            f"{where}: {kind} {entry['id']}: attributes.id is {entry['attributes']['id']!r}"
        )


def _validate(document: Any, where: str) -> None:
    error = first_error(document, "snapshot")
    if error is not None:
        path, message = error
        pointer = "/" + "/".join(str(part) for part in path)
        raise SnapshotError(f"{where}: {pointer}: {_first_line(message)}")


def _first_line(message: str) -> str:
    line = message.splitlines()[0] if message else "invalid"
    return line if len(line) <= 200 else line[:197] + "..."
