"""A canonical, id-free dump of a syncctl SQLite database, for comparing runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


def canonical(db: Path) -> dict[str, Any]:
    """Everything except target ids, timestamps and versions (which differ between runs)."""
    with sqlite3.connect(db) as conn:
        users = conn.execute(
            "SELECT external_id, user_name, active, attributes, managed_by FROM users"
            " ORDER BY external_id"
        ).fetchall()
        groups = conn.execute(
            "SELECT external_id, display_name, attributes, managed_by FROM groups"
            " ORDER BY external_id"
        ).fetchall()
        members = conn.execute(
            "SELECT g.external_id, u.external_id FROM members m"
            " JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id"
            " ORDER BY 1, 2"
        ).fetchall()
    return {
        "users": [[e, n, a, json.loads(attrs), m] for e, n, a, attrs, m in users],
        "groups": [[e, n, json.loads(attrs), m] for e, n, attrs, m in groups],
        "members": [list(pair) for pair in members],
    }


def check_integrity(db: Path) -> None:
    """No corruption, no dangling references, no duplicate objects."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "users" not in tables:  # killed while creating it: the migration is all or nothing
            assert tables <= {"schema_version"}, tables
            assert not conn.execute("SELECT * FROM schema_version").fetchall() if tables else True
            return
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        for table in ("users", "groups"):
            total, distinct = conn.execute(
                f"SELECT count(*), count(DISTINCT external_id) FROM {table}"
            ).fetchone()
            assert total == distinct, f"duplicate {table}"
