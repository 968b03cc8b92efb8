"""Kill ``syncctl apply`` with SIGKILL at random points, again and again, then let it finish:
the database must end up exactly as after a clean run, with no duplicate rows, and at every
crash point the write-ahead rule must hold (every row the policy owns is in its state)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.sqlite.dbstate import canonical, check_integrity
from tests.integration.sqlite.tenant import make_tenant, write_fixture

SYNCCTL = str(Path(sys.executable).with_name("syncctl"))
KILLS = 12
MAX_ATTEMPTS = 40


def apply_cmd(policy: Path) -> list[str]:
    return [SYNCCTL, "apply", policy.name, "--auto-approve", "--lock-timeout", "20s"]


def env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}}


def run_to_completion(policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        apply_cmd(policy),
        cwd=policy.parent,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def owned_rows(db: Path) -> set[str]:
    import sqlite3

    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        try:
            found = conn.execute(
                "SELECT external_id FROM users WHERE managed_by = 'generated'"
                " UNION SELECT external_id FROM groups WHERE managed_by = 'generated'"
            ).fetchall()
        except sqlite3.OperationalError:  # killed before the schema was created
            return set()
    return {row[0] for row in found}


def member_rows(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM members").fetchone()[0])
        except sqlite3.OperationalError:  # killed before the schema was created
            return 0


def state_managed(policy: Path) -> set[str]:
    path = policy.parent / ".syncctl" / "generated.state.json"
    if not path.exists():
        return set()
    return set(json.loads(path.read_text())["managed"])


@pytest.mark.slow
def test_sigkill_at_random_points_converges_to_the_clean_result(tmp_path: Path) -> None:
    tenant = make_tenant(300, 12, 2500, seed=5)
    clean = write_fixture(tmp_path / "clean", tenant)
    started = time.monotonic()
    done = run_to_completion(clean)
    clean_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    expected = canonical(clean.parent / "generated.db")
    assert len(expected["users"]) == 300

    crashed = write_fixture(tmp_path / "crashed", tenant)
    db = crashed.parent / "generated.db"
    total = len(expected["users"]) + len(expected["groups"]) + len(expected["members"])
    rng = random.Random(1234)
    kills = mid_apply = 0
    window = 0.7  # share of a clean run's time before the kill; adapts to the machine's speed
    for _ in range(MAX_ATTEMPTS):
        if kills >= KILLS and mid_apply >= 2:
            break
        process = subprocess.Popen(
            apply_cmd(crashed),
            cwd=crashed.parent,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(rng.uniform(0.5, 1.0) * window * clean_seconds)
            killed = process.poll() is None
            if killed:
                process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=60)
        if db.exists():
            check_integrity(db)
        owned = owned_rows(db)
        # Write-ahead ownership: nothing the policy owns is unknown to its state.
        assert owned <= state_managed(crashed)
        written = len(owned) + member_rows(db)
        if killed:
            kills += 1
            if 0 < written < total:
                mid_apply += 1
        # Steer the kills towards the writes (later after an early kill, sooner after a late
        # one) and start over from an empty directory once everything was written.
        if killed and not written:
            window *= 1.1
        elif not killed or written == total:
            for leftover in (db, *crashed.parent.glob("generated.db-*")):
                leftover.unlink(missing_ok=True)
            shutil.rmtree(crashed.parent / ".syncctl", ignore_errors=True)
            window *= 0.9
    assert kills >= KILLS
    assert mid_apply >= 1, "no kill landed in the middle of the writes"

    final = run_to_completion(crashed)
    assert final.returncode == 0, final.stderr
    check_integrity(db)
    assert canonical(db) == expected
    assert state_managed(crashed) == state_managed(clean)
    replan = subprocess.run(
        [SYNCCTL, "plan", crashed.name, "--detailed-exitcode"],
        cwd=crashed.parent,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replan.returncode == 0, replan.stdout


def test_sigterm_finishes_the_batch_releases_the_lock_and_exits_143(tmp_path: Path) -> None:
    policy = write_fixture(tmp_path / "term", make_tenant(1500, 20, 4000, seed=3))
    lock = policy.parent / ".syncctl" / "generated.state.json.lock"
    process = subprocess.Popen(
        apply_cmd(policy),
        cwd=policy.parent,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not lock.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (0, 143), err
    if process.returncode == 143:
        assert "Terminated" in err
        assert "Traceback" not in err
    assert not lock.exists()
    db = policy.parent / "generated.db"
    if db.exists():
        check_integrity(db)
    assert owned_rows(db) <= state_managed(policy)
    assert run_to_completion(policy).returncode == 0
