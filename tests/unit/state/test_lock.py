"""The per-policy lock: exclusive, names its holder, waits, recovers stale locks."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncctl.errors import LockHeldError
from syncctl.state import acquire, lock_path_for, read_lock


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
