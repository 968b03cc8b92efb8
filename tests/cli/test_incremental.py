"""Incremental reconciliation through the real ``syncctl`` binary, as a cron job sees it: a
no-change run costs the two delta requests, expired delta links recover with a full read and
no false changes, ``full_refresh_every`` and ``--refresh`` read in full, plans are the same
whichever way Graph was read, and the quiet path never hides an edit made on the target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncctl.emulator import Emulator
from tests.cli.delta_workspace import (
    NO_CHANGES,
    Run,
    Workspace,
    canonical_text,
    changes,
    delta_emulator,
    scope_user,
)

pytestmark = pytest.mark.slow  # every test runs the real binary several times


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with delta_emulator() as emu:
        yield emu


@pytest.fixture
def applied(emu: Emulator, tmp_path: Path) -> Workspace:
    """A workspace whose first plan read Graph in full and whose apply converged."""
    space = Workspace.create(emu, tmp_path / "ws")
    first = space.run("plan", "--detailed-exitcode")
    assert first.code == 2, first
    assert "emu: reading Graph in full: no cached slice yet" in first.stderr, first
    assert first.requests > 2, first
    space.converge()
    return space


def test_a_cron_loop_of_no_change_runs_costs_two_graph_requests_each(applied: Workspace) -> None:
    applied.assert_quiet(2)
    applied.assert_quiet(1, command=("apply", "--auto-approve"))
    applied.assert_quiet(1, command=("plan", "--detailed-exitcode"))
    # The quiet plan is recorded (the run after it need not read the target nor plan).
    cache = applied.state()["source_cache"]
    assert cache["quiet_inputs"] and cache["quiet_blob"].startswith("plan-"), cache
    assert (applied.blobs / cache["quiet_blob"]).is_file()
    assert sorted(p.name.split("-")[0] for p in applied.blobs.iterdir()) == ["plan", "slice"]


def test_a_quiet_plan_is_byte_identical_to_a_refreshed_plan(applied: Workspace) -> None:
    applied.assert_quiet(1)  # records the quiet plan: the next run takes it
    quiet = applied.run("plan", "--format", "json")
    assert quiet.code == 0 and quiet.requests == 2, quiet
    refreshed = applied.run("plan", "--format", "json", "--refresh")
    assert refreshed.code == 0 and refreshed.requests > 2, refreshed
    assert refreshed.stderr == "emu: reading Graph in full: --refresh\n", refreshed
    assert canonical_text(quiet.stdout, applied.root) == canonical_text(
        refreshed.stdout, applied.root
    )
    assert json.loads(quiet.stdout)["summary"] == json.loads(refreshed.stdout)["summary"]


def test_expired_delta_tokens_recover_with_a_full_read_and_no_false_changes(
    emu: Emulator, applied: Workspace
) -> None:
    before = applied.run("plan", "--format", "json")
    assert before.code == 0 and before.requests == 2, before
    emu.expire_delta_tokens()
    after = applied.run("plan", "--format", "json", "--detailed-exitcode")
    assert after.code == 0, after  # no false changes
    assert "emu: reading Graph in full:" in after.stderr, after
    assert "delta sync" in after.stderr, after  # says why: Graph ended the delta sync
    assert after.requests > 2, after
    assert canonical_text(after.stdout, applied.root) == canonical_text(before.stdout, applied.root)
    applied.assert_quiet(1)


def test_expired_tokens_with_a_pending_change_plan_that_change_once(
    emu: Emulator, applied: Workspace
) -> None:
    leaver = scope_user(emu, applied.managed(), index=1)
    emu.tenant.disable_user(leaver)
    emu.expire_delta_tokens()
    run = applied.run("plan", "--format", "json", "--detailed-exitcode")
    assert run.code == 2, run
    assert "reading Graph in full" in run.stderr, run
    changes = json.loads(run.stdout)["policies"][0]["changes"]
    disabled = [c for c in changes if c["action"] in {"disable", "delete"}]
    assert [c["source_id"] for c in disabled] == [leaver], changes
    applied.converge()
    applied.assert_quiet(1)


def _age_full_read(space: Workspace, hours: float) -> None:
    state = space.state()
    when = datetime.now(UTC) - timedelta(hours=hours)
    state["source_cache"]["full_read_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    space.write_state(state)


def test_full_refresh_every_and_refresh_read_in_full(emu: Emulator, tmp_path: Path) -> None:
    space = Workspace.create(emu, tmp_path / "ws", source__full_refresh_every="1h")
    space.converge()
    _age_full_read(space, 0.5)  # within the hour: delta
    space.assert_quiet(1)
    _age_full_read(space, 2)
    due = space.run("plan", "--detailed-exitcode")
    assert due.code == 0 and NO_CHANGES in due.stdout, due
    assert due.requests > 2, due
    assert due.stderr == (
        "emu: reading Graph in full: the last full read is older than "
        "source.full_refresh_every (1h)\n"
    ), due
    aged = datetime.now(UTC) - timedelta(hours=2)
    read_at = datetime.strptime(space.state()["source_cache"]["full_read_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert read_at.replace(tzinfo=UTC) > aged + timedelta(hours=1)  # the clock restarted
    space.assert_quiet(1)
    # --refresh always reads in full, for plan and apply alike.
    for command in (("plan", "--refresh"), ("apply", "--auto-approve", "--refresh")):
        forced = space.run(*command)
        assert forced.code == 0 and NO_CHANGES in forced.stdout, forced
        assert forced.requests > 2, forced
        assert "emu: reading Graph in full: --refresh" in forced.stderr, forced
    # A time that cannot be read is a reason to read in full, never to trust the slice.
    state = space.state()
    state["source_cache"]["full_read_at"] = "yesterday-ish"
    space.write_state(state)
    unreadable = space.run("plan", "--detailed-exitcode")
    assert unreadable.code == 0 and NO_CHANGES in unreadable.stdout, unreadable
    assert "the time of the last full read is unreadable" in unreadable.stderr, unreadable
    assert unreadable.requests > 2, unreadable


def _planned(run: Run) -> list[tuple[str, str, str | None]]:
    assert run.code == 2, run  # changes: the quiet plan was not taken
    document = json.loads(run.stdout)
    return [(c["kind"], c["action"], c.get("source_id")) for c in changes(document)]


def test_direct_edits_of_the_target_after_a_quiet_run_are_planned(
    emu: Emulator, applied: Workspace
) -> None:
    """An application writing to the SQLite directory: the quiet path must not hide it."""
    plan = ("plan", "--format", "json", "--detailed-exitcode")
    applied.assert_quiet(1)
    assert applied.state()["source_cache"]["quiet_inputs"]  # the next run would take it
    edited = scope_user(emu, applied.managed(), index=2)
    sql = "UPDATE users SET attributes = json_set(attributes, '$.displayName', ?) "
    assert applied.sql(sql + "WHERE external_id = ?", "Edited by app", edited) == 1
    assert _planned(applied.run(*plan)) == [("user", "update", edited)]
    applied.converge()
    assert "Edited by app" not in "\n".join(applied.target_rows())

    applied.assert_quiet(1)
    assert applied.sql("DELETE FROM members WHERE rowid = (SELECT min(rowid) FROM members)") == 1
    assert [(k, a) for k, a, _ in _planned(applied.run(*plan))] == [("membership", "add")]
    applied.converge()

    applied.assert_quiet(1)
    gone = scope_user(emu, applied.managed(), index=3)
    assert applied.sql("DELETE FROM users WHERE external_id = ?", gone) == 1
    assert ("user", "create", gone) in _planned(applied.run(*plan))
    applied.converge()
    assert any(
        gone in row for row in applied.target_rows() if row.startswith('INSERT INTO "users"')
    )
    applied.assert_quiet(1)


def test_a_copied_workspace_plans_for_its_own_target(applied: Workspace, tmp_path: Path) -> None:
    """The same checkout in another directory (another runner, a restored backup): its plan
    names its own target, even when everything else about it is the same."""
    applied.assert_quiet(1)  # records the quiet plan
    copy = applied.copy(tmp_path / "elsewhere")
    run = copy.run("plan", "--format", "json")
    assert run.code == 0 and NO_CHANGES not in run.stderr, run
    (policy,) = json.loads(run.stdout)["policies"]
    assert policy["target"] == {"type": "sqlite", "path": str(copy.database)}, run
