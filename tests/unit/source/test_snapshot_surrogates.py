"""A lone UTF-16 surrogate in Graph data (it happens: Graph is UTF-16 inside) must not make
``syncctl export`` crash: the snapshot keeps the value exactly, as a JSON escape."""

from __future__ import annotations

from pathlib import Path

from syncctl.model import SourceSnapshot, SourceUser
from syncctl.source.snapshot import load_snapshot, write_snapshot


def test_a_lone_surrogate_is_written_escaped_and_read_back_exactly(tmp_path: Path) -> None:
    user = SourceUser("u1", {"id": "u1", "userPrincipalName": "a@x.test", "displayName": "A\ud800"})
    snapshot = SourceSnapshot(tenant="x.test", users={"u1": user}, groups={})
    path = tmp_path / "snapshot.json"
    write_snapshot(snapshot, path)
    assert "\\ud800" in path.read_text(encoding="utf-8")
    assert load_snapshot(path).users["u1"].attributes["displayName"] == "A\ud800"
