"""The per-policy lock: exclusive, names its holder, waits, recovers stale locks."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import os
import socket
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncctl.errors import LockHeldError
from syncctl.state import (
    DEFAULT_TTL,
    Holder,
    StateError,
    acquire,
    force_unlock,
    holder_status,
    lock_path_for,
    read_lock,
)
from syncctl.state.lock import process_start


def test_second_acquire_fails_naming_the_holder(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    held = acquire(state, policy="p", operation="apply")
    with pytest.raises(LockHeldError) as info:
        acquire(state, policy="p", operation="plan")
    message = str(info.value)
    assert f"pid {os.getpid()}" in message
    assert socket.gethostname() in message
    assert "apply since" in message
    assert info.value.exit_code == 3
    held.release()
    acquire(state, policy="p", operation="plan").release()
    assert not lock_path_for(state).exists()


def test_lock_file_records_holder(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    held = acquire(state, policy="p", operation="apply")
    info = read_lock(lock_path_for(state))
    assert info is not None
    assert (info.pid, info.host, info.operation, info.policy) == (
        os.getpid(),
        socket.gethostname(),
        "apply",
        "p",
    )
    held.release()


def test_lock_of_a_dead_process_is_recovered(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    lock_path_for(state).write_text(
        json.dumps(
            {
                "id": "x",
                "policy": "p",
                "operation": "apply",
                "holder": "ghost@here",
                "host": socket.gethostname(),
                "pid": int(dead.stdout),
                "created": "2026-11-22T00:00:00Z",
            }
        )
    )
    acquire(
        state, policy="p", operation="apply", clock=lambda: datetime(2026, 11, 22, tzinfo=UTC)
    ).release()


def test_lock_older_than_ttl_is_recovered_even_from_another_host(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    lock_path_for(state).write_text(
        json.dumps(
            {
                "id": "x",
                "policy": "p",
                "operation": "apply",
                "holder": "ci@elsewhere",
                "host": "elsewhere",
                "pid": 1,
                "created": "2026-11-22T00:00:00Z",
            }
        )
    )
    at = datetime(2026, 11, 22, 1, tzinfo=UTC)
    with pytest.raises(LockHeldError, match="ci@elsewhere"):
        acquire(state, policy="p", operation="apply", clock=lambda: at, ttl=timedelta(hours=2))
    acquire(
        state, policy="p", operation="apply", clock=lambda: at, ttl=timedelta(minutes=30)
    ).release()


def test_unreadable_lock_file_counts_as_held(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    lock_path_for(state).write_text("garbage")
    with pytest.raises(LockHeldError, match="unknown"):
        acquire(state, policy="p", operation="apply")


def test_lock_timeout_waits_for_release(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    held = acquire(state, policy="p", operation="apply")
    script = (
        "import sys, time; from pathlib import Path; from syncctl.state import acquire;"
        "t=time.monotonic();"
        "l=acquire(Path(sys.argv[1]), policy='p', operation='apply', timeout=10);"
        "print(round(time.monotonic()-t, 1)); l.release()"
    )
    waiter = subprocess.Popen(
        [sys.executable, "-c", script, str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.6)
        held.release()
        out, _ = waiter.communicate(timeout=20)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0
    assert 0.4 <= float(out) < 10


def _contend(
    state: str,
    barrier: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue[str],
) -> None:
    barrier.wait()
    try:
        lock = acquire(Path(state), policy="p", operation="apply")
    except LockHeldError:
        results.put("refused")
        return
    results.put("won")
    time.sleep(0.5)
    lock.release()


def test_exactly_one_of_many_concurrent_acquirers_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(6)
    results: multiprocessing.Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=_contend, args=(str(tmp_path / "p.state.json"), barrier, results))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    try:
        outcomes = sorted(results.get(timeout=30) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    assert outcomes == ["refused"] * 5 + ["won"]


# -- holders that are gone although their pid is alive, or that cannot be checked ----------


def _write_lock(state: Path, **fields: object) -> None:
    lock = {
        "id": "x",
        "policy": "p",
        "operation": "apply",
        "holder": "ghost@here",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "created": "2026-11-22T00:00:00Z",
    }
    lock.update(fields)
    lock_path_for(state).write_text(json.dumps(lock))


NOW = datetime(2026, 11, 22, 0, 5, tzinfo=UTC)


def test_a_reused_pid_is_recognised_by_its_start_time(tmp_path: Path) -> None:
    # syncctl as pid 1 of a restarted container: the lock's pid is alive (it is us), but the
    # process that took the lock started at another time.
    state = tmp_path / "p.state.json"
    mine = process_start(os.getpid())
    assert mine is not None
    boot, _, ticks = mine.partition(":")
    _write_lock(state, process_start=f"{boot}:{int(ticks) - 1}")
    acquire(state, policy="p", operation="apply", clock=lambda: NOW).release()
    _write_lock(state, process_start=f"another-boot:{ticks}")  # same pid and ticks, rebooted
    acquire(state, policy="p", operation="apply", clock=lambda: NOW).release()


def test_a_verified_live_holder_is_honoured_past_the_ttl(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    _write_lock(state, process_start=process_start(os.getpid()))
    two_days_later = NOW + timedelta(days=2)
    with pytest.raises(LockHeldError, match="ghost@here"):
        acquire(state, policy="p", operation="apply", clock=lambda: two_days_later)
    assert read_lock(lock_path_for(state)) is not None


def test_a_lock_without_process_start_falls_back_to_the_ttl(tmp_path: Path) -> None:
    # Written by an older syncctl: a live pid may or may not be the holder.
    state = tmp_path / "p.state.json"
    _write_lock(state)
    with pytest.raises(LockHeldError):
        acquire(state, policy="p", operation="apply", clock=lambda: NOW)
    later = NOW + DEFAULT_TTL
    acquire(state, policy="p", operation="apply", clock=lambda: later).release()


def test_lock_records_the_process_start_of_its_holder(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    held = acquire(state, policy="p", operation="apply")
    info = read_lock(lock_path_for(state))
    assert info is not None and info.process_start == process_start(os.getpid())
    assert holder_status(info) is Holder.RUNNING
    held.release()


def test_process_start_tells_two_processes_apart() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        theirs = process_start(child.pid)
        assert theirs is not None and theirs == process_start(child.pid)
        assert theirs != process_start(os.getpid())
    finally:
        child.communicate(b"")
    assert process_start(child.pid) is None


def test_a_holder_on_another_host_is_unknown(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    _write_lock(state, host="elsewhere", process_start="b:1")
    info = read_lock(lock_path_for(state))
    assert info is not None and holder_status(info) is Holder.UNKNOWN


# -- force-unlock ----------------------------------------------------------------------------


def test_force_unlock_removes_only_the_named_lock(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    held = acquire(state, policy="p", operation="apply")
    with pytest.raises(StateError, match="does not match") as info:
        force_unlock(state, "not-the-id")
    assert "\n" not in str(info.value) and str(lock_path_for(state)) in str(info.value)
    assert read_lock(lock_path_for(state)) == held.info
    assert force_unlock(state, held.info.id) == held.info
    assert not lock_path_for(state).exists()
    with pytest.raises(StateError, match="not locked"):
        force_unlock(state, held.info.id)
    with pytest.raises(StateError, match="not locked"):
        force_unlock(tmp_path / "missing" / "p.state.json", "x")


def test_refusal_names_the_force_unlock_command(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    _write_lock(state, host="elsewhere", id="abc-123")
    with pytest.raises(LockHeldError, match="syncctl force-unlock p abc-123"):
        acquire(state, policy="p", operation="apply", clock=lambda: NOW)


# -- privacy -----------------------------------------------------------------------------------


def test_lock_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "p.state.json"
    old = os.umask(0o022)
    try:
        held = acquire(state, policy="p", operation="apply")
    finally:
        os.umask(old)
    assert stat.S_IMODE(lock_path_for(state).stat().st_mode) == 0o600
    held.release()


def test_policy_state_lock_ttl_is_parsed_with_a_6h_default(tmp_path: Path) -> None:
    from syncctl.policy import load_policies

    text = (Path(__file__).resolve().parents[3] / "policies" / "demo.yaml").read_text()
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "demo.json").write_text("{}")
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(
        text.replace("name: demo", "name: other") + "\nstate:\n  lock_ttl: 2d\n"
    )
    ttls = {p.name: p.state.lock_ttl for p in load_policies([tmp_path])}
    assert ttls == {"demo": DEFAULT_TTL, "other": timedelta(days=2)}
