"""What only the PostgreSQL backend's blobs do: their table, created with the others (also in
a database whose tables predate it), and errors in one line (the contract suite covers the
rest)."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable

import psycopg
import pytest

from syncctl.state.postgres import SCHEMA, PostgresBackend
from syncctl.state.store import StateError
from tests.integration.state.conftest import TENANT, Factory
from tests.servers.postgres import PASSWORD, PostgresServer


def _blob_rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT policy, tenant, name, length(data) FROM syncctl_blobs ORDER BY name"
        ).fetchall()


def test_a_blob_is_one_row_keyed_by_policy_tenant_and_name(make_backend: Factory, dsn: str) -> None:
    backend = make_backend()
    big = random.Random(3).randbytes(40 * 1024 * 1024)  # the largest slice we expect
    backend.save_blob("slice-big", big)
    backend.save_blob("slice-small", b"s")
    backend.save_blob("slice-small", b"small")
    assert _blob_rows(dsn) == [
        ("hr", TENANT, "slice-big", len(big)),
        ("hr", TENANT, "slice-small", 5),
    ]
    assert make_backend().load_blob("slice-big") == big


def test_a_database_whose_tables_predate_blobs_gains_the_blob_table(
    make_backend: Factory, dsn: str
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("DROP TABLE syncctl_blobs")
    backend = make_backend()
    assert backend.load() is None
    backend.save_blob("slice-1", b"one")
    assert make_backend().load_blob("slice-1") == b"one"


def test_first_runs_at_once_create_the_tables_once(make_backend: Factory, dsn: str) -> None:
    backends = [make_backend(f"p{i}") for i in range(6)]
    start = threading.Barrier(len(backends))
    failures: list[BaseException] = []

    def first_run(backend: PostgresBackend) -> None:
        start.wait()
        try:
            backend.save_blob("slice-1", backend.location.encode())
        except BaseException as exc:  # reported below, with what failed
            failures.append(exc)

    threads = [threading.Thread(target=first_run, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert [b.load_blob("slice-1") for b in backends] == [b.location.encode() for b in backends]


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_is_a_one_line_error_and_prune_gives_up_quietly(
    postgres_server: PostgresServer, make_backend: Factory
) -> None:
    url = postgres_server.dsn("x").replace(f"port={postgres_server.port}", f"port={_unused_port()}")
    backend = make_backend(url=url)
    attempts: list[Callable[[], object]] = [
        lambda: backend.load_blob("slice-1"),
        lambda: backend.save_blob("s", b""),
    ]
    for attempt in attempts:
        with pytest.raises(StateError) as error:
            attempt()
        message = str(error.value)
        assert message.startswith("policy hr: state backend postgres (postgresql://")
        assert "cannot connect" in message and "\n" not in message
        assert PASSWORD not in message
    backend.prune_blobs(["slice-1"])  # best effort: no error
