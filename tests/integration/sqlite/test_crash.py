"""Kill ``syncctl apply`` with SIGKILL at random points, again and again, then let it finish:
the database must end up exactly as after a clean run, with no duplicate rows, and at every
crash point the write-ahead rule must hold (every row the policy owns is in its state).
SIGTERM must finish the batch being written, release the lock and exit 143; one that arrives
after the work is done must change nothing.

Every signal is steered by observed progress (the lock, the state journal, rows committed to
the database), never by wall time, so load on the machine cannot move a kill point.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from syncctl.state import lock_path_for, read_lock
from syncctl.targets.sqlite import open_database
from tests.integration.sqlite.dbstate import canonical, check_integrity
from tests.integration.sqlite.tenant import make_tenant, write_fixture

SYNCCTL = str(Path(sys.executable).with_name("syncctl"))
KILLS = 12
MID_APPLY = 3  # kills that must land between two commits of the writes
MAX_ATTEMPTS = 40
POLL = 0.005  # seconds between looks at the run's progress


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


def state_path(policy: Path) -> Path:
    return policy.parent / ".syncctl" / f"{policy.stem}.state.json"


def written(db: Path) -> int:
    """Rows the policy has committed: its users and groups, and memberships."""
    return len(owned_rows(db)) + member_rows(db)


def holds_lock(policy: Path, pid: int) -> bool:
    holder = read_lock(lock_path_for(state_path(policy)))
    return holder is not None and holder.pid == pid


def wait_for(process: subprocess.Popen[str], condition: Callable[[], bool]) -> bool:
    """Watch the run until ``condition`` holds (True) or it exits first (False)."""
    while process.poll() is None:
        if condition():
            return True
        time.sleep(POLL)
    return False


def kill_point(
    rng: random.Random, policy: Path, pid: int, before: int, total: int
) -> Callable[[], bool]:
    db = policy.parent / f"{policy.stem}.db"
    if rng.random() < 0.25:
        # Early: the run holds the lock, somewhere in reading, planning or journalling.
        return lambda: holds_lock(policy, pid)
    # Once at least this many rows are committed. SQLite commits whole batches, so the kill
    # lands in the batch after (or after the last one, near the end of the run).
    at_least = rng.randint(before + 1, total - 1)
    return lambda: written(db) >= at_least


@pytest.mark.slow
def test_sigkill_at_random_points_converges_to_the_clean_result(tmp_path: Path) -> None:
    tenant = make_tenant(300, 12, 2500, seed=5)
    clean = write_fixture(tmp_path / "clean", tenant)
    done = run_to_completion(clean)
    assert done.returncode == 0, done.stderr
    expected = canonical(clean.parent / "generated.db")
    assert len(expected["users"]) == 300

    crashed = write_fixture(tmp_path / "crashed", tenant)
    db = crashed.parent / "generated.db"
    total = len(expected["users"]) + len(expected["groups"]) + len(expected["members"])
    rng = random.Random(1234)
    kills = mid_apply = 0
    for _ in range(MAX_ATTEMPTS):
        if kills >= KILLS and mid_apply >= MID_APPLY:
            break
        before = written(db)
        if before >= total - 1:
            # Everything is written: start over from an empty directory.
            for leftover in (db, *crashed.parent.glob("generated.db-*")):
                leftover.unlink(missing_ok=True)
            shutil.rmtree(crashed.parent / ".syncctl", ignore_errors=True)
            before = 0
        process = subprocess.Popen(
            apply_cmd(crashed),
            cwd=crashed.parent,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            point = kill_point(rng, crashed, process.pid, before, total)
            killed = wait_for(process, point)
            if killed:
                process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=60)
        if db.exists():
            check_integrity(db)
        owned = owned_rows(db)
        # Write-ahead ownership: nothing the policy owns is unknown to its state.
        assert owned <= state_managed(crashed)
        if killed:
            kills += 1
            if 0 < len(owned) + member_rows(db) < total:
                mid_apply += 1
    assert kills >= KILLS
    assert mid_apply >= MID_APPLY, "too few kills landed in the middle of the writes"

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


def usleep_syscall() -> str:
    """The syscall a thread shows in ``/proc/.../syscall`` while in usleep(3), which is how
    SQLite's busy handler waits for a lock (the number differs between architectures)."""
    libc = ctypes.CDLL(None)
    done = threading.Event()

    def doze() -> None:
        while not done.is_set():
            libc.usleep(100_000)

    thread = threading.Thread(target=doze, daemon=True)
    thread.start()
    try:
        assert thread.native_id is not None
        seen: list[str] = []
        while len(seen) < 5 or len(set(seen[-5:])) != 1:
            seen.append(Path(f"/proc/self/task/{thread.native_id}/syscall").read_text().split()[0])
            time.sleep(POLL)
        return seen[-1]
    finally:
        done.set()


def waits_for_a_lock(pid: int, syscall: str) -> bool:
    """Whether a thread of ``pid`` sleeps in SQLite's busy handler."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "syscall").read_text().split()[0] == syscall:
                return True
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
    return False


def test_sigterm_finishes_the_batch_releases_the_lock_and_exits_143(tmp_path: Path) -> None:
    # An existing, empty database whose write lock the test holds, as an application writing
    # to it would. The run plans (reading needs no write lock), journals ownership, and its
    # first batch then waits for the lock in SQLite's busy handler: SIGTERM lands while that
    # write is in progress, however loaded the machine is. Releasing the lock lets the batch
    # finish; no batch may start after it.
    sleeping = usleep_syscall()
    tenant = make_tenant(200, 8, 600, seed=3)
    policy = write_fixture(tmp_path / "term", tenant)
    db = policy.parent / "generated.db"
    open_database(db).close()
    application = sqlite3.connect(db, isolation_level=None, timeout=0)
    application.execute("BEGIN IMMEDIATE")
    process = subprocess.Popen(
        apply_cmd(policy),
        cwd=policy.parent,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        writing = wait_for(
            process,
            lambda: bool(state_managed(policy)) and waits_for_a_lock(process.pid, sleeping),
        )
        assert writing, process.communicate()[1]
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        first = process.stderr.readline()  # written by the handler before it unwinds
        application.execute("ROLLBACK")
        rest = process.communicate(timeout=60)[1]
    finally:
        application.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    err = first + rest
    assert process.returncode == 143, err
    assert first.startswith("Terminated"), err
    assert "Traceback" not in err
    assert not lock_path_for(state_path(policy)).exists()
    check_integrity(db)
    # The batch in flight (the groups) was written; none was started after the signal.
    with sqlite3.connect(db) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM groups), (SELECT count(*) FROM users)"
        ).fetchone()
    assert counts == (8, 0)
    assert owned_rows(db) <= state_managed(policy)
    last = json.loads(state_path(policy).read_text())["last_apply"]
    assert last["outcome"] == "interrupted", last
    assert last["error"] == "interrupted by SIGTERM"
    assert run_to_completion(policy).returncode == 0
    assert len(owned_rows(db)) == len(tenant.users) + 8


LATE_SIGTERM = """import os, signal, sys
from syncctl.cli.main import main
sys.argv = ["syncctl", *sys.argv[1:]]
try:
    code = main()
except SystemExit as exc:
    code = exc.code
# The work is done and the process is about to exit: a SIGTERM now (a pod deleted just as the
# run ends) must not turn a success into "Terminated" and 143, nor kill it with -15.
os.kill(os.getpid(), signal.SIGTERM)
sys.exit(code)
"""


def test_a_sigterm_after_the_work_is_done_changes_nothing(tmp_path: Path) -> None:
    policy = write_fixture(tmp_path / "late", make_tenant(20, 2, 30, seed=4))
    for args, expected in (
        (["apply", policy.name, "--auto-approve"], 0),
        (["plan", policy.name, "--detailed-exitcode"], 0),
        (["apply", "missing.yaml", "--auto-approve"], 1),
    ):
        result = subprocess.run(
            [sys.executable, "-c", LATE_SIGTERM, *args],
            cwd=policy.parent,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == expected, result.stderr
        assert "Terminated" not in result.stderr
    assert not lock_path_for(state_path(policy)).exists()
