"""Fixtures shared by the state backend integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from syncctl.policy.model import PostgresState, SecretRef
from syncctl.state.postgres import PostgresBackend
from tests.servers.postgres import PostgresServer

TENANT = "11111111-2222-3333-4444-555555555555"
DSN_ENV = "SYNCCTL_TEST_PG_DSN"

Factory = Callable[..., PostgresBackend]


@pytest.fixture
def dsn(postgres_server: PostgresServer, postgres_database: str) -> str:
    return postgres_server.dsn(postgres_database)


@pytest.fixture
def make_backend(monkeypatch: pytest.MonkeyPatch, dsn: str) -> Iterator[Factory]:
    """Backends on the test's database (or another DSN), each with its own session."""
    made: list[PostgresBackend] = []

    def build(policy: str = "hr", *, url: str | None = None) -> PostgresBackend:
        monkeypatch.setenv(DSN_ENV, url or dsn)
        backend = PostgresBackend(
            PostgresState(dsn=SecretRef(env=DSN_ENV)), policy=policy, tenant=TENANT
        )
        made.append(backend)
        return backend

    yield build
    for backend in made:
        backend.close()
