"""When the cached slice cannot be trusted, or Graph fails, through the real ``syncctl``
binary: a corrupt, missing, foreign or old-format slice means a full read with a note (the
same plan as a full read, never an empty scope); a deleted scope group, a failed or
throttled-out delta round is an error (exit 1, nothing written), never "No changes"."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncctl.emulator import Emulator
from tests.cli.delta_workspace import (
    NO_CHANGES,
    SCOPE,
    Workspace,
    changes,
    delta_emulator,
    group_id,
    scope_user,
)

pytestmark = pytest.mark.slow  # every test runs the real binary several times


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with delta_emulator(seed=31) as emu:
        yield emu


@pytest.fixture(scope="module")
def template(module_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A converged cron workspace with a recorded quiet plan, copied by each test."""
    space = Workspace.create(module_emulator, tmp_path_factory.mktemp("recovery") / "ws")
    space.converge()
    space.assert_quiet(1)
    return space


@pytest.fixture
def healthy(emu: Emulator, template: Workspace, tmp_path: Path) -> Workspace:
    space = template.copy(tmp_path / "ws")
    space.masked = (template.root,)  # a copy's first quiet plan names the template's path
    return space


# -- an unusable slice ------------------------------------------------------------------------


def flip_bytes(space: Workspace) -> str:
    blob = space.slice_blob()
    data = bytearray(blob.read_bytes())
    for offset in (len(data) // 3, len(data) // 2, len(data) - 5):
        data[offset] ^= 0xFF
    blob.write_bytes(bytes(data))
    return "the cached slice "


def delete_blob(space: Workspace) -> str:
    space.slice_blob().unlink()
    return "is missing from the state"


def older_format(space: Workspace) -> str:
    """A well-formed slice of another format, named by its digest as syncctl would name it."""
    blob = space.slice_blob()
    document = json.loads(zlib.decompress(blob.read_bytes()))
    document["format"] = 0
    raw = json.dumps(document, separators=(",", ":")).encode()
    name = "slice-" + hashlib.sha256(raw).hexdigest()
    (space.blobs / name).write_bytes(zlib.compress(raw))
    state = space.state()
    state["source_cache"]["blob"] = name
    space.write_state(state)
    return "the cached slice has format 0"


def emptied_slice(space: Workspace) -> str:
    """A slice that claims the scope has no users: trusted, it would disable everyone."""
    blob = space.slice_blob()
    document = json.loads(zlib.decompress(blob.read_bytes()))
    document["users"] = []
    for group in document["groups"]:
        group[2] = []
    raw = json.dumps(document, separators=(",", ":")).encode()
    blob.write_bytes(zlib.compress(raw))  # the name no longer matches the content
    return "does not match its digest"


def edited_key(space: Workspace) -> str:
    state = space.state()
    state["source_cache"]["key"] = "0" * 64
    space.write_state(state)
    return "the policy's scope or selected properties changed"


def policy_scope_change(space: Workspace) -> str:
    """Another (empty) scope group: a scope change whose right plan is still no change."""
    document = space.policy()
    document["source"]["scope_groups"] = [SCOPE, "PM-Archive"]
    space.write_policy(document)
    return "the policy's scope or selected properties changed"


def old_state_format(space: Workspace) -> str:
    """A state written by the syncctl before delta (format 2: no slice, no links)."""
    state = space.state()
    for key in ("source_cache", "delta_links"):
        state.pop(key)
    state["format_version"] = 2
    space.write_state(state)
    return "no cached slice yet"


Damage = Callable[[Workspace], str]
DAMAGE: dict[str, Damage] = {
    "slice bytes flipped": flip_bytes,
    "slice blob deleted": delete_blob,
    "slice of an older format": older_format,
    "slice emptied": emptied_slice,
    "state's slice key edited": edited_key,
    "state of the format before delta": old_state_format,
    "policy scope changed": policy_scope_change,  # last: the cases share one workspace
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_an_unusable_slice_means_a_full_read_and_the_full_read_plan(
    emu: Emulator, healthy: Workspace, tmp_path: Path, damage: str
) -> None:
    twin = healthy.copy(tmp_path / "twin")  # the intact state, read in full
    said = DAMAGE[damage](healthy)
    twin.write_policy(healthy.policy())  # the same policy (the scope change included)
    run, plan = healthy.plan_json("--detailed-exitcode")
    assert "reading Graph in full: " in run.stderr and said in run.stderr, run
    assert run.requests > 2, run  # it did read in full
    _, full = twin.plan_json("--refresh", "--detailed-exitcode")
    assert plan == full  # nothing to do, as the full read says
    assert not [c for c in changes(plan) if c["action"] in {"delete", "disable"}]
    healthy.assert_quiet(1)  # and the next run is back on delta
    assert healthy.slice_blob().is_file()


# -- Graph errors -----------------------------------------------------------------------------


def test_a_scope_group_deleted_in_entra_fails_the_plan_and_writes_nothing(
    tmp_path: Path,
) -> None:
    with delta_emulator(users=120, groups=10, seed=5) as emu:
        space = Workspace.create(emu, tmp_path / "ws")
        space.converge()
        space.assert_quiet(1)
        rows = space.target_rows()
        state = space.state()
        scope = group_id(emu, SCOPE)
        emu.tenant.hard_delete_group(scope)
        for command in (("plan",), ("apply", "--auto-approve")):
            run = space.run(*command)
            assert run.code == 1, run
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1, run
            assert scope in lines[0] or SCOPE in lines[0], run
            assert "Traceback" not in run.stderr and NO_CHANGES not in run.stdout, run
            assert space.target_rows() == rows  # nothing written to the target
            after = space.state()
            assert after["managed"] == state["managed"]
            assert after["source_cache"]["blob"] == state["source_cache"]["blob"]


# (delta resource, status, Retry-After): every request to it answers so, for good.
FAULTS: dict[str, tuple[str, int, int]] = {
    "users delta throttled beyond the retry budget": ("users", 429, 3600),
    "users delta 503 every time": ("users", 503, 0),
    "groups delta 503 every time": ("groups", 503, 0),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_delta_round_fails_the_plan_and_the_next_run_recovers(
    emu: Emulator, healthy: Workspace, fault: str
) -> None:
    applied = healthy
    leaver = scope_user(emu, applied.managed(), index=0)
    emu.tenant.disable_user(leaver)  # a change the failed run must not lose
    try:
        _fails_then_recovers(emu, applied, fault, leaver)
    finally:
        emu.tenant.update_user(leaver, accountEnabled=True)


def _fails_then_recovers(emu: Emulator, applied: Workspace, fault: str, leaver: str) -> None:
    rows = applied.target_rows()
    resource, status, retry_after = FAULTS[fault]
    emu.faults.add(f"{resource}/delta", status=status, retry_after=retry_after, times=None)
    commands = [("plan", "--detailed-exitcode")]
    if status == 429:
        commands.append(("apply", "--auto-approve"))
    for command in commands:
        run = applied.run(*command)
        assert run.code == 1, run
        assert f"GET /{resource}/delta" in run.stderr, run
        assert "Traceback" not in run.stderr and NO_CHANGES not in run.stdout, run
        assert f"/v1.0/{resource}/delta" in run.paths, run
        assert applied.target_rows() == rows
    emu.faults.clear()
    recovered = applied.run("plan", "--format", "json", "--detailed-exitcode")
    assert recovered.code == 2, recovered
    assert "reading Graph in full" not in recovered.stderr, recovered
    planned = [(c["action"], c.get("source_id")) for c in changes(json.loads(recovered.stdout))]
    assert ("disable", leaver) in planned, planned
    applied.converge()
    applied.assert_quiet(1)
