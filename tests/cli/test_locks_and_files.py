"""Locks and files through the real ``syncctl`` binary: ``force-unlock``, ``state.lock_ttl``,
a plan that creates no database, and private (0600) database and lock files."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import shutil
import signal
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncctl.cli.main import main
from syncctl.state import lock_path_for
from tests.cli.binary import run_syncctl

REPO = Path(__file__).resolve().parents[2]


def syncctl(*args: str, cwd: Path, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    return run_syncctl(*args, cwd=cwd, stdin=stdin)


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A fresh copy of policies/demo.yaml and its snapshot; returns the policies directory."""
    (tmp_path / "policies" / "snapshots").mkdir(parents=True)
    shutil.copy(REPO / "policies" / "demo.yaml", tmp_path / "policies" / "demo.yaml")
    shutil.copy(
        REPO / "policies" / "snapshots" / "demo.json",
        tmp_path / "policies" / "snapshots" / "demo.json",
    )
    return tmp_path / "policies"


def foreign_lock(policies: Path, *, age: timedelta, lock_id: str = "lock-from-elsewhere") -> Path:
    """The lock of a run on a machine that vanished."""
    path = lock_path_for(policies / ".syncctl" / "demo.state.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    created = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    info = {
        "id": lock_id,
        "policy": "demo",
        "operation": "apply",
        "holder": "ci@vanished-runner",
        "host": "vanished-runner",
        "pid": 4242,
        "process_start": "boot:1",
        "created": created,
    }
    path.write_text(json.dumps(info), encoding="utf-8")
    return path


# -- plan changes nothing ------------------------------------------------------------------


def test_plan_does_not_create_the_database(demo: Path) -> None:
    result = syncctl("plan", "policies/demo.yaml", cwd=demo.parent)
    assert result.returncode == 0, result.stderr
    assert "create" in result.stdout
    assert not list(demo.glob(".syncctl/demo.db*"))


def test_apply_creates_a_private_database(demo: Path) -> None:
    old = os.umask(0o022)
    try:
        result = syncctl("apply", "policies/demo.yaml", "--auto-approve", cwd=demo.parent)
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    db = demo / ".syncctl" / "demo.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    for leftover in db.parent.glob("demo.db-*"):  # -wal/-shm, if still there
        assert stat.S_IMODE(leftover.stat().st_mode) == 0o600, leftover.name


# -- force-unlock ----------------------------------------------------------------------------


def test_a_refused_run_names_the_lock_and_force_unlock_removes_it(demo: Path) -> None:
    lock = foreign_lock(demo, age=timedelta(minutes=5))
    refused = syncctl("plan", "policies/", cwd=demo.parent)
    assert refused.returncode == 3
    assert "syncctl force-unlock demo lock-from-elsewhere" in refused.stderr

    wrong = syncctl("force-unlock", "--force", "demo", "not-this-one", cwd=demo.parent)
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1 and "does not match" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert lock.exists()

    # No prompt, with or without a terminal: the lock id is the confirmation.
    removed = syncctl("force-unlock", "demo", "lock-from-elsewhere", cwd=demo.parent)
    assert removed.returncode == 0, removed.stderr
    assert "ci@vanished-runner" in removed.stdout
    assert not lock.exists()
    assert syncctl("plan", "policies/", cwd=demo.parent).returncode == 0

    gone = syncctl("force-unlock", "--force", "demo", "lock-from-elsewhere", cwd=demo.parent)
    assert gone.returncode == 1 and "not locked" in gone.stderr


def test_force_unlock_never_prompts_on_a_terminal_and_takes_a_policy_file(demo: Path) -> None:
    lock = foreign_lock(demo, age=timedelta(minutes=5))
    primary, secondary = pty.openpty()
    try:
        result = syncctl(
            "force-unlock",
            "policies/demo.yaml",
            "lock-from-elsewhere",
            cwd=demo.parent,
            stdin=secondary,
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert result.returncode == 0, result.stderr
    assert "?" not in result.stderr
    assert not lock.exists()


def test_force_unlock_of_an_unknown_policy(demo: Path) -> None:
    result = syncctl("force-unlock", "--force", "nope", "x", "policies/", cwd=demo.parent)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error: no policy named "nope" in policies'


# -- state.lock_ttl ------------------------------------------------------------------------------


def test_lock_ttl_from_the_policy_frees_a_lock_from_a_vanished_host(demo: Path) -> None:
    foreign_lock(demo, age=timedelta(minutes=20))
    held = syncctl("plan", "policies/", cwd=demo.parent)
    assert held.returncode == 3  # the default, 6h, still honours it
    policy = demo / "demo.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8") + "\nstate:\n  lock_ttl: 15m\n", encoding="utf-8"
    )
    freed = syncctl("plan", "policies/", cwd=demo.parent)
    assert freed.returncode == 0, freed.stderr


def test_lock_ttl_must_be_a_positive_duration(demo: Path) -> None:
    policy = demo / "demo.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8") + "\nstate:\n  lock_ttl: 0h\n", encoding="utf-8"
    )
    result = syncctl("validate", "policies/", cwd=demo.parent)
    assert result.returncode != 0
    assert "lock_ttl" in result.stderr and "whole number above 0" in result.stderr


# -- the SIGTERM handler, in-process ------------------------------------------------------------


def test_in_process_main_puts_the_callers_sigterm_handler_back() -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not expected")

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with contextlib.suppress(SystemExit):
            main(["--version"])
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
