"""The state file: round trips exactly, writes atomically, refuses what it cannot trust."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncctl.state import LastRun, State, StateError, load_state, save_state, write_atomic
from syncctl.state.store import STATE_FORMAT_VERSION

T0 = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)

ids = st.uuids().map(str)


@given(
    managed=st.frozensets(ids, max_size=20),
    disabled=st.dictionaries(
        ids, st.integers(min_value=0, max_value=10**8).map(lambda s: T0 + timedelta(seconds=s))
    ),
    links=st.dictionaries(st.sampled_from(["users", "groups"]), st.text(min_size=1)),
)
def test_state_round_trips(
    tmp_path_factory: pytest.TempPathFactory,
    managed: frozenset[str],
    disabled: dict[str, datetime],
    links: dict[str, str],
) -> None:
    path = tmp_path_factory.mktemp("state") / "p.state.json"
    run = LastRun("apply", "2026-11-22T01:00:00Z", "2026-11-22T01:00:05Z", "success", {"a": 1})
    state = State("p", managed, disabled, run, run, links)
    save_state(path, state)
    assert load_state(path, "p") == state
    first = path.read_bytes()
    save_state(path, load_state(path, "p"))
    assert path.read_bytes() == first  # deterministic bytes


def test_missing_file_is_a_fresh_state(tmp_path: Path) -> None:
    assert load_state(tmp_path / "none.json", "p") == State("p")


def test_transitions_keep_the_first_disable_time(tmp_path: Path) -> None:
    state = State("p").with_managed(["a", "b"]).with_disabled(["a"], T0)
    later = state.with_disabled(["a"], T0 + timedelta(days=3))
    assert later.disabled_at == {"a": T0}
    assert later.with_enabled(["a"]).disabled_at == {}
    gone = later.without_managed(["a"])
    assert gone.managed == {"b"}
    assert gone.disabled_at == {}


def test_state_of_another_policy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_state(path, State("other"))
    with pytest.raises(StateError, match='belongs to policy "other"'):
        load_state(path, "mine")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must hold a JSON object"),
        ('{"format_version": 99, "policy": "p"}', "written by a newer syncctl"),
        ('{"policy": "p"}', "no valid format_version"),
        ('{"format_version": 1}', "malformed state document"),
    ],
)
def test_corrupt_state_is_an_error_not_an_empty_state(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(StateError, match=message) as info:
        load_state(path, "p")
    assert str(path) in str(info.value)


def test_state_never_holds_attribute_values_or_secrets(tmp_path: Path) -> None:
    from syncctl.plan.diff import synced_digest

    path = tmp_path / "s.json"
    digest = synced_digest({"displayName": "Alice Adams", "title": "CFO"})
    save_state(path, State("p", frozenset({"id-1"}), synced={"id-1": digest}))
    saved = json.loads(path.read_text())
    assert set(saved) == {
        "format_version",
        "policy",
        "tenant",
        "managed",
        "disabled_at",
        "last_run",
        "last_apply",
        "delta_links",
        "synced",  # digests of what syncctl wrote (drift detection), never the values
        "source_cache",  # names and digests of the cached slice's blob, never its contents
    }
    assert "Alice" not in path.read_text() and "CFO" not in path.read_text()
    assert load_state(path, "p").synced == {"id-1": digest}


def test_a_version_1_state_is_migrated_forward_and_saved_as_the_current_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"format_version": 1, "policy": "p", "managed": ["id-1"], "disabled_at": {}})
    )
    state = load_state(path, "p", tenant="contoso.onmicrosoft.com")
    assert state.managed == {"id-1"} and state.tenant is None
    save_state(path, state.for_tenant("contoso.onmicrosoft.com"))
    saved = json.loads(path.read_text())
    assert saved["format_version"] == STATE_FORMAT_VERSION == 3
    assert saved["tenant"] == "contoso.onmicrosoft.com"


def test_a_state_of_another_tenant_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_state(path, State("p", frozenset({"id-1"}), tenant="fabrikam.onmicrosoft.com"))
    with pytest.raises(StateError, match=r"belongs to tenant fabrikam\.onmicrosoft\.com"):
        load_state(path, "p", tenant="contoso.onmicrosoft.com")


def test_atomic_write_leaves_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.json"
    write_atomic(path, "old\n")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(StateError, match="No space left"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp file left behind
