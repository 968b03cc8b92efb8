"""What only the PostgreSQL state backend does: its tables, its connection errors, and a lock
that lives and dies with a database session (the shared contract suite covers the rest)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from syncctl import redaction
from syncctl.errors import LockHeldError
from syncctl.state import postgres
from syncctl.state.backend import StateConflictError
from syncctl.state.store import State, StateError, render_state
from tests.integration.state.conftest import DSN_ENV, TENANT, Factory
from tests.servers.postgres import PostgresServer

TTL = timedelta(hours=6)


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'syncctl%'"
        ).fetchall()
    return {str(r[0]) for r in rows}


def _one_line_error(call: Callable[[], object]) -> str:
    with pytest.raises(StateError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("policy hr: state backend postgres (postgresql://"), message
    return message


def test_tables_are_created_on_first_use_and_the_document_is_stored_verbatim(
    make_backend: Factory, dsn: str
) -> None:
    assert _tables(dsn) == set()
    backend = make_backend()
    assert backend.load() is None
    assert _tables(dsn) == {"syncctl_state", "syncctl_locks", "syncctl_blobs"}
    state = State(policy="hr", managed=frozenset({"b", "a"}))
    backend.save(state)
    backend.save(state.with_managed(["c"]))
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT tenant, generation, document FROM syncctl_state").fetchone()
    # Byte for byte what render_state gives, so `state show` prints what is stored.
    assert row == (TENANT, 2, render_state(state.with_managed(["c"]).for_tenant(TENANT)))
    assert make_backend().load() == state.with_managed(["c"]).for_tenant(TENANT)


def test_a_role_that_may_not_create_the_tables_is_told_the_sql(
    postgres_server: PostgresServer, postgres_database: str, make_backend: Factory
) -> None:
    with postgres_server.admin() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(postgres_database), sql.Literal(postgres_server.password)
            )
        )
    try:
        reader = postgres_server.dsn(postgres_database, user=postgres_database)
        message = _one_line_error(make_backend(url=reader).load)
        assert "may not create them; run: CREATE TABLE IF NOT EXISTS syncctl_state" in message
        assert "CREATE TABLE IF NOT EXISTS syncctl_locks" in message

        # Once the owner created them, the same role works without any DDL.
        make_backend().load()
        with psycopg.connect(postgres_server.dsn(postgres_database), autocommit=True) as conn:
            conn.execute(
                sql.SQL("GRANT SELECT ON syncctl_state, syncctl_locks TO {}").format(
                    sql.Identifier(postgres_database)
                )
            )
        assert make_backend(url=reader).load() is None
    finally:
        postgres_server.drop_database(postgres_database)  # the role owns privileges in it
        with postgres_server.admin() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(postgres_database)))


def test_a_wrong_password_is_one_line_without_the_password(
    postgres_server: PostgresServer, postgres_database: str, make_backend: Factory
) -> None:
    wrong = "Wrong-Passw0rd-8812"
    url = postgres_server.dsn(postgres_database, password=wrong)
    backend = make_backend(url=url)
    assert wrong not in backend.location and "password" not in backend.location
    assert f"127.0.0.1:{postgres_server.port}/{postgres_database}" in backend.location
    message = _one_line_error(backend.load)
    assert "password authentication failed" in message
    assert wrong not in message and url not in message
    assert wrong not in redaction.mask(f"quoted alone: {wrong}")  # registered for masking


def test_a_missing_database_is_one_line(
    postgres_server: PostgresServer, make_backend: Factory
) -> None:
    message = _one_line_error(make_backend(url=postgres_server.dsn("no_such_db")).load)
    assert 'database "no_such_db" does not exist' in message


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_is_one_line_at_once(
    postgres_server: PostgresServer, make_backend: Factory
) -> None:
    url = postgres_server.dsn("x").replace(f"port={postgres_server.port}", f"port={_unused_port()}")
    started = time.monotonic()
    backend = make_backend(url=url)
    message = _one_line_error(lambda: backend.lock(operation="apply", timeout=0, ttl=TTL))
    assert time.monotonic() - started < 5
    assert "cannot connect: connection to server at" in message
    assert "Connection refused" in message


def test_a_server_that_never_answers_times_out(
    monkeypatch: pytest.MonkeyPatch, postgres_server: PostgresServer, make_backend: Factory
) -> None:
    # Accepts TCP connections (the kernel's backlog) but never speaks: without a connect
    # timeout libpq waits for the server's first message forever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = postgres_server.dsn("x").replace(
            f"port={postgres_server.port}", f"port={silent.getsockname()[1]}"
        )
        monkeypatch.setattr(postgres, "CONNECT_TIMEOUT", 1)
        started = time.monotonic()
        message = _one_line_error(make_backend(url=url).load)
    assert time.monotonic() - started < 10
    assert "timeout" in message.lower()


def test_concurrent_writers_the_second_save_is_refused(make_backend: Factory, dsn: str) -> None:
    first, second = make_backend(), make_backend()
    assert first.load() is None and second.load() is None
    first.save(State(policy="hr", managed=frozenset({"first"})))
    with pytest.raises(StateConflictError, match="another run wrote it since this run read it"):
        second.save(State(policy="hr", managed=frozenset({"second"})))

    # The same once a row exists: both load generation 1, the slower one is refused.
    assert first.load() is not None and second.load() is not None
    second.save(State(policy="hr", managed=frozenset({"second"})))
    with pytest.raises(StateConflictError) as caught:
        first.save(State(policy="hr", managed=frozenset({"third"})))
    assert str(caught.value).startswith("policy hr: state backend postgres (")
    assert make_backend().load() == State(policy="hr", tenant=TENANT, managed=frozenset({"second"}))


def test_saves_from_worker_threads_of_one_run_never_conflict(make_backend: Factory) -> None:
    backend = make_backend()
    assert backend.load() is None
    backend.save(State(policy="hr"))
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                backend.save(State(policy="hr", managed=frozenset({f"{n}-{i}"})))
        except BaseException as exc:  # collected: asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    loaded = make_backend().load()
    assert loaded is not None and len(loaded.managed) == 1


_CHILD = """
import json, os, sys
from datetime import timedelta
from syncctl.policy.model import PostgresState, SecretRef
from syncctl.state.postgres import PostgresBackend
backend = PostgresBackend(PostgresState(dsn=SecretRef(env=sys.argv[1])), policy="hr",
                          tenant=sys.argv[2])
lock = backend.lock(operation="apply", timeout=0, ttl=timedelta(hours=6))
print(json.dumps({"lock_id": lock.info.id, "pid": os.getpid()}), flush=True)
sys.stdin.read()
"""


def _wait_for(what: str, done: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"not after {seconds}s: {what}"
        time.sleep(0.05)


def test_a_sigkilled_holder_frees_the_lock_at_once(make_backend: Factory, dsn: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, DSN_ENV, TENANT],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, DSN_ENV: dsn}, cwd=Path(__file__).parents[3],
    )  # fmt: skip
    try:
        assert child.stdout is not None
        took = json.loads(child.stdout.readline())
        observer = make_backend()
        holder = observer.read_lock()
        assert holder is not None
        assert (holder.id, holder.pid, holder.operation) == (took["lock_id"], took["pid"], "apply")
        with pytest.raises(LockHeldError) as caught:
            observer.lock(operation="plan", timeout=0, ttl=TTL)
        assert f"syncctl force-unlock hr {took['lock_id']}" in str(caught.value)

        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        # The server ends the dead client's session, and with it the lock: no TTL to wait
        # out, and the row it left behind is not believed.
        started = time.monotonic()
        lock = observer.lock(operation="plan", timeout=20, ttl=TTL)
        assert time.monotonic() - started < 10
        assert observer.read_lock() == lock.info
        lock.release()
        assert observer.read_lock() is None
    finally:
        child.kill()
        child.wait()


def test_force_unlock_ends_the_holders_session(make_backend: Factory) -> None:
    holder, operator = make_backend(), make_backend()
    held = holder.lock(operation="apply", timeout=0, ttl=TTL)
    held.check()
    with pytest.raises(StateError, match="does not match the lock"):
        operator.force_unlock("not-the-id")
    held.check()  # a wrong id removes nothing

    assert operator.force_unlock(held.info.id) == held.info
    with pytest.raises(StateError, match="lock was lost"):
        held.check()
    with pytest.raises(StateError, match="cannot save the state"):
        holder.save(State(policy="hr"))  # never reconnects to write without the lock
    held.release()  # idempotent, and nothing of ours is left to remove
    # Free when force_unlock returns: the server waited for the session to end.
    taken = operator.lock(operation="apply", timeout=0, ttl=TTL)
    assert operator.read_lock() == taken.info


def test_a_stale_row_is_ignored_and_its_pid_is_never_terminated(
    make_backend: Factory, dsn: str
) -> None:
    backend = make_backend()
    assert backend.read_lock() is None  # creates the tables
    with psycopg.connect(dsn, autocommit=True) as bystander:
        # A dead holder's row whose backend_pid now belongs to an unrelated live session.
        bystander.execute(
            "INSERT INTO syncctl_locks VALUES ('hr', %s, 'old-id', 'ci@gone', 'gone', 7, "
            "pg_backend_pid(), 'apply', %s, NULL)",
            (TENANT, datetime(2024, 1, 1, tzinfo=UTC)),
        )
        assert backend.read_lock() is None
        removed = backend.force_unlock("old-id")
        assert (removed.id, removed.holder, removed.created) == (
            "old-id", "ci@gone", "2024-01-01T00:00:00Z",
        )  # fmt: skip
        assert bystander.execute("SELECT 1").fetchone() == (1,)  # still alive
        with pytest.raises(StateError, match="not locked"):
            backend.force_unlock("old-id")


def test_a_lock_held_by_a_session_without_a_row_is_still_held(
    make_backend: Factory, dsn: str
) -> None:
    backend = make_backend()
    backend.load()
    with psycopg.connect(dsn, autocommit=True) as other:
        # A dead holder's row, and a session that holds the lock but wrote no row (a run
        # between taking the lock and writing its row): the row must not be pinned on it.
        other.execute(
            "INSERT INTO syncctl_locks VALUES ('hr', %s, 'old-id', 'ci@gone', 'gone', 7, "
            "0, 'apply', now(), NULL)",
            (TENANT,),
        )
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"syncctl:{TENANT}:hr",))
        pid = other.info.backend_pid
        with pytest.raises(LockHeldError, match=f"a session that left no row \\(server pid {pid}"):
            backend.lock(operation="apply", timeout=0, ttl=TTL)
        holder = backend.read_lock()
        assert holder is not None and f"server pid {pid}" in holder.holder
        assert holder.id != "old-id"
        # The stale row can go, but its id does not stand for the live session.
        assert backend.force_unlock("old-id").id == "old-id"
        assert other.execute("SELECT 1").fetchone() == (1,)
        # Another policy's key is free.
        make_backend("finance").lock(operation="apply", timeout=0, ttl=TTL).release()
    assert backend.lock(operation="apply", timeout=0, ttl=TTL).info.policy == "hr"


def test_one_backend_cannot_take_its_own_lock_twice(make_backend: Factory) -> None:
    backend = make_backend()
    first = backend.lock(operation="apply", timeout=0, ttl=TTL)
    # Advisory locks nest within a session; the second take must still be refused.
    with pytest.raises(LockHeldError, match=first.info.id):
        backend.lock(operation="apply", timeout=0, ttl=TTL)
    first.release()
    backend.lock(operation="apply", timeout=0, ttl=TTL).check()


def test_a_newer_document_is_refused_never_an_empty_state(make_backend: Factory, dsn: str) -> None:
    backend = make_backend()
    backend.save(State(policy="hr"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE syncctl_state SET document = '{\"format_version\": 99}'")
    message = _one_line_error(backend.load)
    assert "format_version 99 was written by a newer syncctl" in message
