"""A throwaway PostgreSQL cluster for the test session, from Debian's ``postgresql`` binaries.

``postgres_server`` starts one cluster per session (password auth on 127.0.0.1, a free
port, its socket and data in a temp directory); ``postgres_database`` gives each test a fresh
database owned by a non-superuser role, and ``postgres_state_store`` wraps that database as a
``StateStore`` for the state contract suite. PostgreSQL refuses to run as root, so under root
the cluster belongs to the ``postgres`` user and every binary runs through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from syncctl.state.postgres import SCHEMA
from tests.contract.state_store import StateStore

ADMIN = "postgres"
ROLE = "syncctl"  # what the tests connect as: owns its database, not a superuser
PASSWORD = "pg-test-Secret-4711"  # distinctive, so a test can look for it in messages
STARTUP_SECONDS = 60.0


def postgres_bin() -> Path:
    """The ``bin`` directory of the newest PostgreSQL under /usr/lib/postgresql."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in root.glob("*") if p.name.isdigit() and (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.name),
    )
    if not found:
        pytest.fail(
            f"no PostgreSQL server binaries under {root} (bin/initdb): install Debian's "
            "postgresql package (apt-get install postgresql) to run the PostgreSQL tests",
            pytrace=False,
        )
    return found[-1] / "bin"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="syncctl-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.password = PASSWORD
        self._as_root = os.geteuid() == 0
        self._process: subprocess.Popen[bytes] | None = None
        if self._as_root:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def _command(self, name: str, *args: str) -> list[str]:
        command = [str(self.bin / name), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_root else command

    def _run(self, name: str, *args: str) -> None:
        done = subprocess.run(
            self._command(name, *args), cwd=self.root, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if self._as_root:
            shutil.chown(pwfile, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", ADMIN, f"--pwfile={pwfile}", "-E", "UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        for _attempt in range(3):  # the free port may be taken before the server binds it
            self.port = _free_port()
            log = (self.root / "server.log").open("ab")
            self._process = subprocess.Popen(
                self._command(
                    "postgres", "-D", str(self.data), "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1",
                    "-c", f"unix_socket_directories={self.root}",
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=100",
                ),
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            log.close()
            if self._wait_ready():
                return
        raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_SECONDS
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False  # exited: port taken, or a real failure (see the log)
            try:
                psycopg.connect(self.admin_dsn(), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)  # polling the server's own readiness, not a fixed wait
        raise RuntimeError(f"PostgreSQL not ready after {STARTUP_SECONDS}s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
            self._process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str, *, user: str = ROLE, password: str | None = None) -> str:
        """A TCP, password-authenticated libpq connection string."""
        return make_conninfo(
            host="127.0.0.1",
            port=self.port,
            dbname=dbname,
            user=user,
            password=self.password if password is None else password,
        )

    def admin_dsn(self, dbname: str = "postgres") -> str:
        return self.dsn(dbname, user=ADMIN)

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_dsn(dbname), autocommit=True)

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(ROLE)))  # fmt: skip
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        with server.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(server.password)
                )
            )
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The name of a fresh, empty database owned by ``ROLE``, dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield name
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def postgres_state_store(postgres_server: PostgresServer, postgres_database: str) -> StateStore:
    dsn = postgres_server.dsn(postgres_database)

    def write_raw(policy: str, tenant: str, text: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)
            conn.execute(
                "INSERT INTO syncctl_state (policy, tenant, generation, document) "
                "VALUES (%s, %s, 1, %s) ON CONFLICT (policy, tenant) DO UPDATE "
                "SET document = EXCLUDED.document, generation = syncctl_state.generation + 1",
                (policy, tenant, text),
            )

    return StateStore(
        kind="postgres",
        section={"backend": "postgres", "dsn": {"env": "SYNCCTL_TEST_STATE_DSN"}},
        env={"SYNCCTL_TEST_STATE_DSN": dsn},
        write_raw=write_raw,
    )
