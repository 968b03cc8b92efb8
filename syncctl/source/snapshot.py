"""Snapshot files: a SourceSnapshot as deterministic JSON (``schemas/snapshot.schema.json``).

``syncctl export`` writes one; ``tenant.snapshot`` reads it back so reviews and the demo can
plan offline. Writing is atomic (a temporary file in the same directory, then ``os.replace``)
so a crash never leaves half a snapshot where a policy expects a whole one.

A snapshot belongs to the tenant it was read from: ``tenant`` (as the exporting policy named
it) and, when that is a domain and export learnt it, ``tenant_id`` (the directory GUID). A
policy reading the file must name the tenant by one of these (``load_snapshot(tenant=...)``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncctl.errors import SnapshotError
from syncctl.fileio import write_pieces_atomic
from syncctl.jsontext import emit_indented_json, indented_json
from syncctl.model import RemovalReason, SourceGroup, SourceSnapshot, SourceUser
from syncctl.schemafiles import first_error, load_schema

FORMAT_VERSION = 1
SCHEMA_ID = "https://syncctl.dev/schemas/snapshot.schema.json"


@dataclass(frozen=True, slots=True)
class TenantSlice:
    """What a snapshot file holds: the slice, and the tenant's directory id (GUID) when
    ``snapshot.tenant`` is a domain and the id is known (None otherwise)."""

    snapshot: SourceSnapshot
    tenant_id: str | None = None

    def tenant_names(self) -> tuple[str, ...]:
        names = [self.snapshot.tenant]
        if self.tenant_id and self.tenant_id.casefold() != self.snapshot.tenant.casefold():
            names.append(self.tenant_id)
        return tuple(names)


def snapshot_schema() -> dict[str, Any]:
    return load_schema("snapshot")


def snapshot_to_json(snapshot: SourceSnapshot, tenant_id: str | None = None) -> dict[str, Any]:
    """The file form: every array sorted by id, member lists sorted, so equal snapshots are
    byte-identical files (diffable in Git, stable plan fingerprints). Attribute dicts are
    the snapshot's own (not copies: 90 MB at 100,000 users): read the result, do not change
    it."""
    names = TenantSlice(snapshot, tenant_id).tenant_names()
    return {
        "$schema": SCHEMA_ID,
        "format_version": FORMAT_VERSION,
        "tenant": snapshot.tenant,
        **({"tenant_id": names[1]} if len(names) > 1 else {}),
        "users": [
            {"id": user_id, "attributes": _plain(snapshot.users[user_id].attributes)}
            for user_id in sorted(snapshot.users)
        ],
        "groups": [
            {
                "id": group_id,
                "attributes": _plain(snapshot.groups[group_id].attributes),
                "members": sorted(set(snapshot.groups[group_id].members)),
            }
            for group_id in sorted(snapshot.groups)
        ],
        "removed": [
            {"id": object_id, "reason": str(snapshot.removed[object_id])}
            for object_id in sorted(snapshot.removed)
        ],
    }


def _plain(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return attributes if type(attributes) is dict else dict(attributes)


def dumps_snapshot(snapshot: SourceSnapshot, tenant_id: str | None = None) -> str:
    document = snapshot_to_json(snapshot, tenant_id)
    _validate(document, "<snapshot being written>")
    text = indented_json(document, indent=2, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from Graph cannot be written as UTF-8; its \u escape round-trips
        # it exactly, so the snapshot still holds what Graph said.
        text = indented_json(document, indent=2, ensure_ascii=True) + "\n"
    return text


def write_snapshot(snapshot: SourceSnapshot, path: Path, *, tenant_id: str | None = None) -> None:
    """Write ``snapshot`` to ``path`` atomically; the same snapshot always gives the same bytes
    (``dumps_snapshot``'s), written as they are made rather than held as one string.
    ``tenant_id``: the tenant's directory id, recorded when ``snapshot.tenant`` is a domain."""
    document = snapshot_to_json(snapshot, tenant_id)
    _validate(document, "<snapshot being written>")

    def text(ensure_ascii: bool) -> Callable[[Callable[[str], None]], None]:
        def produce(emit: Callable[[str], None]) -> None:
            emit_indented_json(document, emit, indent=2, ensure_ascii=ensure_ascii)
            emit("\n")

        return produce

    try:
        try:
            write_pieces_atomic(path, text(ensure_ascii=False))
        except UnicodeEncodeError:
            # A lone surrogate from Graph cannot be written as UTF-8 (as in dumps_snapshot).
            write_pieces_atomic(path, text(ensure_ascii=True))
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot write snapshot: {exc.strerror}") from None


def load_snapshot(path: Path, *, tenant: str | None = None) -> SourceSnapshot:
    """Read and validate a snapshot file; any problem is a one-line SnapshotError naming it.
    With ``tenant`` (a policy's ``tenant.id``), a file read from another tenant is refused."""
    return load_tenant_slice(path, tenant=tenant).snapshot


def load_tenant_slice(path: Path, *, tenant: str | None = None) -> TenantSlice:
    """``load_snapshot`` keeping the tenant's other name, for writing the file again."""
    document = _read_document(path)
    snapshot = snapshot_from_json(document, str(path))  # validates the document first
    tenant_slice = TenantSlice(snapshot, document.get("tenant_id"))
    if tenant is not None:
        check_tenant(tenant_slice, tenant, path)
    return tenant_slice


def check_tenant(tenant_slice: TenantSlice, tenant: str, path: Path) -> None:
    """Refuse a snapshot of another tenant than the policy's (names compare ignoring case;
    a domain and a GUID match only when the file records both)."""
    names = tenant_slice.tenant_names()
    if tenant.casefold() in (n.casefold() for n in names):
        return
    recorded = " / ".join(names)
    hint = (
        ""
        if len(names) > 1
        else "; if that is the same tenant under its other name, name it that way in "
        "tenant.id, or export the snapshot again"
    )
    raise SnapshotError(
        f"{path}: snapshot was read from tenant {recorded}, not the policy's tenant.id "
        f"{tenant}{hint}"
    )


def _read_document(path: Path) -> Any:
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
    return document


def snapshot_from_json(document: Any, where: str) -> SourceSnapshot:
    _validate(document, where)
    users: dict[str, SourceUser] = {}
    for entry in document["users"]:
        user_id = entry["id"]
        if entry["attributes"]["id"] != user_id:
            raise _identity_error(entry, where, "user")
        if user_id in users:
            raise SnapshotError(f"{where}: user {user_id} appears twice")
        users[user_id] = SourceUser(user_id, entry["attributes"])
    groups: dict[str, SourceGroup] = {}
    for entry in document["groups"]:
        if entry["attributes"]["id"] != entry["id"]:
            raise _identity_error(entry, where, "group")
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


def _identity_error(entry: dict[str, Any], where: str, kind: str) -> SnapshotError:
    return SnapshotError(
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
