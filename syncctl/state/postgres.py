"""``state.backend: postgres``: the state and lock of each policy in a PostgreSQL database.

The document (``render_state`` text, byte for byte) sits in ``syncctl_state`` with a
``generation`` that every save bumps: a save names the generation it loaded, so a writer in
between makes it update no row (``StateConflictError``) instead of being overwritten.

The lock is a session-level advisory lock on the backend's own connection: the server drops
it when the session ends (process killed, machine gone, connection cut), so it needs no TTL.
``syncctl_locks`` only says who holds it; a row is believed only while the session it names
(``backend_pid``) holds the advisory lock, so rows left by dead holders are ignored.

Blobs are rows of ``syncctl_blobs``, one statement each (so a reader sees a whole blob or
none), keyed by policy, tenant and name like the state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from syncctl import redaction
from syncctl.errors import SecretError
from syncctl.state.backend import StateConflictError, check_blob_name
from syncctl.state.lock import (
    POLL_SECONDS,
    UNKNOWN_ID,
    LockInfo,
    lock_held,
    new_lock_info,
    unknown_holder,
)
from syncctl.state.store import State, StateError, iso, parse_iso, parse_state, render_state

if TYPE_CHECKING:
    import psycopg

    from syncctl.policy.model import PostgresState

CONNECT_TIMEOUT = 10  # seconds; an unreachable server is an error, not a hang
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS syncctl_state (policy text NOT NULL, tenant text NOT NULL, "
    "generation bigint NOT NULL, document text NOT NULL, "
    "updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (policy, tenant)); "
    "CREATE TABLE IF NOT EXISTS syncctl_locks (policy text NOT NULL, tenant text NOT NULL, "
    "lock_id text NOT NULL, holder text NOT NULL, host text NOT NULL, pid integer NOT NULL, "
    "backend_pid integer NOT NULL, operation text NOT NULL, created timestamptz NOT NULL, "
    "process_start text, PRIMARY KEY (policy, tenant)); "
    "CREATE TABLE IF NOT EXISTS syncctl_blobs (policy text NOT NULL, tenant text NOT NULL, "
    "name text NOT NULL, data bytea NOT NULL, saved_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (policy, tenant, name));"
)
_TABLES = ("syncctl_state", "syncctl_locks", "syncctl_blobs")
_KEY = "policy = %(policy)s AND tenant = %(tenant)s"
_COLUMNS = "lock_id, holder, host, pid, operation, created, process_start, backend_pid"
# Granted advisory locks on our key in this database: a bigint key shows in pg_locks as
# classid (its high 32 bits), objid (its low 32 bits) and objsubid 1.
_HELD = (
    "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid::bigint = %(hi)s "
    "AND l.objid::bigint = %(lo)s "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class PostgresLock:
    def __init__(self, backend: PostgresBackend, info: LockInfo) -> None:
        self._backend = backend
        self._info = info

    @property
    def info(self) -> LockInfo:
        return self._info

    def check(self) -> None:
        self._backend._check(self._info)

    def release(self) -> None:
        self._backend._release(self._info)


class PostgresBackend:
    kind = "postgres"

    def __init__(self, config: PostgresState, *, policy: str, tenant: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        self._policy, self._tenant = policy, tenant
        self._prefix = f"policy {policy}: state backend postgres"
        try:
            self._dsn = config.dsn.reveal()
            self._given = conninfo_to_dict(self._dsn)
        except SecretError as exc:
            raise SecretError(f"{self._prefix}: dsn: {exc}") from None
        except Exception:
            # libpq's parse error quotes the text around the mistake: maybe the password.
            raise StateError(
                f"{self._prefix}: dsn {config.dsn.describe()} is not a valid libpq "
                "connection string"
            ) from None
        if self._given.get("password"):
            redaction.remember(str(self._given["password"]))  # libpq may echo it alone
        given = self._given
        host = given.get("host") or given.get("hostaddr") or "localhost"
        where = f"{host}:{given.get('port') or 5432}/{given.get('dbname') or given.get('user')}"
        self._location = (
            f"postgresql://{where} table syncctl_state (policy {policy}, tenant {tenant})"
        )
        self._conn: psycopg.Connection[Any] | None = None
        self._params: dict[str, Any] = {"policy": policy, "tenant": tenant}
        self._generation: int | None = None
        self._held: LockInfo | None = None
        self._guard = threading.Lock()

    @property
    def location(self) -> str:
        return self._location

    def _error(self, message: str, kind: type[StateError] = StateError) -> StateError:
        return kind(redaction.mask(f"{self._prefix} ({self._location}): {message}"))

    @contextmanager
    def _session(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        """The connection, under the guard; every psycopg error becomes one StateError line."""
        import psycopg

        with self._guard:
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                raise self._error(f"cannot connect: {_line(exc)}") from None
            try:
                yield conn
            except psycopg.Error as exc:
                raise self._error(f"cannot {doing}: {_line(exc)}") from None

    def _sql(self, sql: str, **extra: Any) -> tuple[Any, ...] | None:
        """The first row of ``sql`` (the caller holds the guard)."""
        assert self._conn is not None
        return self._conn.execute(sql, {**self._params, **extra}).fetchone()

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.conninfo import make_conninfo

        if self._conn is not None:
            # Never reconnect: the lock lived in the old session, so a new one would write
            # without it. The run fails instead; the next run starts a new session.
            return self._conn
        defaults: dict[str, str | int] = {
            "connect_timeout": CONNECT_TIMEOUT, "application_name": "syncctl", "keepalives": 1,
            "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        }  # fmt: skip
        # What the DSN sets itself wins (a slow link may need a longer connect_timeout).
        extra = {k: v for k, v in defaults.items() if k not in self._given}
        # Autocommit: a run holds this session for hours, and a transaction left open between
        # statements would pin old rows (and trip idle_in_transaction_session_timeout, which
        # ends the session and with it the lock). Writes open their own transaction.
        conn = psycopg.connect(make_conninfo(self._dsn, **extra), autocommit=True)
        try:
            self._ensure_schema(conn)
            row = conn.execute(
                "SELECT hashtextextended(%s, 0)", (f"syncctl:{self._tenant}:{self._policy}",)
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        key = int(row[0]) if row else 0
        self._params.update(key=key, hi=(key >> 32) & 0xFFFFFFFF, lo=key & 0xFFFFFFFF)
        self._conn = conn
        return conn

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        import psycopg

        found = conn.execute(
            "SELECT " + " AND ".join(f"to_regclass('{t}') IS NOT NULL" for t in _TABLES)
        ).fetchone()
        if found and found[0]:
            return  # no DDL at all, so a role that may not create tables works too
        try:
            with conn.transaction():
                # Two first runs at once would both CREATE ... IF NOT EXISTS and one fail on
                # the catalog's unique index; this serialises them.
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('syncctl:schema', 0))")
                conn.execute(SCHEMA)
        except psycopg.errors.InsufficientPrivilege:
            raise self._error(
                f"the tables do not exist and this role may not create them; run: {SCHEMA}"
            ) from None

    def load(self) -> State | None:
        with self._session("load the state"):
            row = self._sql(f"SELECT generation, document FROM syncctl_state WHERE {_KEY}")
            self._generation = None if row is None else int(row[0])
        if row is None:
            return None
        where = f"{self._prefix} ({self._location})"
        return parse_state(str(row[1]), where, policy=self._policy, tenant=self._tenant)

    def save(self, state: State) -> None:
        doc = render_state(state.for_tenant(self._tenant))
        with self._session("save the state") as conn, conn.transaction():
            if self._generation is None:
                row = self._sql(
                    "INSERT INTO syncctl_state (policy, tenant, generation, document) "
                    "VALUES (%(policy)s, %(tenant)s, 1, %(doc)s) "
                    "ON CONFLICT (policy, tenant) DO NOTHING RETURNING generation",
                    doc=doc,
                )
            else:
                row = self._sql(
                    "UPDATE syncctl_state SET document = %(doc)s, generation = generation + 1, "
                    f"updated_at = now() WHERE {_KEY} AND generation = %(gen)s "
                    "RETURNING generation",
                    doc=doc,
                    gen=self._generation,
                )
            if row is None:
                message = "another run wrote it since this run read it; not overwriting"
                raise self._error(message, StateConflictError)
            self._generation = int(row[0])

    def lock(self, *, operation: str, timeout: float, ttl: timedelta) -> PostgresLock:
        """``ttl`` is unused: the server frees the lock when the holder's session ends."""
        info = new_lock_info(self._policy, operation)
        deadline = time.monotonic() + max(timeout, 0.0)
        misses = 0
        while True:
            with self._session("take the lock") as conn:
                # Advisory locks nest within a session: taking ours twice would "succeed".
                row = None if self._held else self._sql("SELECT pg_try_advisory_lock(%(key)s)")
                if row and row[0]:
                    # We hold the advisory lock, so any row there is a dead holder's.
                    with conn.transaction():
                        self._sql(f"DELETE FROM syncctl_locks WHERE {_KEY} RETURNING 1")
                        self._sql(
                            "INSERT INTO syncctl_locks (policy, tenant, lock_id, holder, host, "
                            "pid, backend_pid, operation, created, process_start) VALUES "
                            "(%(policy)s, %(tenant)s, %(id)s, %(holder)s, %(host)s, %(pid)s, "
                            "pg_backend_pid(), %(op)s, %(at)s, %(start)s) RETURNING 1",
                            id=info.id, holder=info.holder, host=info.host, pid=info.pid,
                            op=operation, at=parse_iso(info.created), start=info.process_start,
                        )  # fmt: skip
                    self._held = info
                    return PostgresLock(self, info)
                holder = self._held or self._holder()
            if holder is None and misses < 3:
                misses += 1
                continue  # released between our try and the look: try again at once
            if time.monotonic() >= deadline:
                if holder is not None and holder.id != UNKNOWN_ID:
                    raise lock_held(
                        self._policy, holder.describe(), self._location, unlock_id=holder.id
                    )
                who = "a session that left no row" if holder is None else holder.holder
                raise lock_held(self._policy, who, self._location, unlock_id=None)
            time.sleep(POLL_SECONDS)

    def _holder(self) -> LockInfo | None:
        """Who holds the advisory lock, in one statement: pg_locks says whether and which
        session holds it, and a row counts only when it names that very session. So a row
        left by a dead holder (whose pid a new session may have got) is never believed, and
        a holder releasing meanwhile cannot pair its old row with the next holder. (Trying
        the lock ourselves instead would briefly take it from a run that wants it.)"""
        row = self._sql(
            "SELECT r.lock_id, r.holder, r.host, r.pid, r.operation, r.created, "
            "r.process_start, l.pid FROM pg_locks l LEFT JOIN syncctl_locks r "
            "ON r.policy = %(policy)s AND r.tenant = %(tenant)s AND r.backend_pid = l.pid "
            f"WHERE {_HELD} LIMIT 1"
        )
        if row is None:
            return None
        if row[0] is None:  # held by a session that wrote no row (yet, or it was deleted)
            who = f"a session that left no row (server pid {row[7]})"
            now = iso(datetime.now(UTC))
            return unknown_holder(now, policy=self._policy, holder=who)
        return self._info(row)

    def _info(self, row: Sequence[Any]) -> LockInfo:
        lock_id, holder, host, pid, operation, created, started = row[:7]
        return LockInfo(
            str(lock_id), self._policy, str(operation), str(holder), str(host), int(pid),
            iso(created), None if started is None else str(started),
        )  # fmt: skip

    def read_lock(self) -> LockInfo | None:
        with self._session("read the lock"):
            return self._holder()

    def _check(self, info: LockInfo) -> None:
        lost = self._error("this run's lock was lost (its session ended?); not writing on")
        if self._held is not info:
            raise lost
        try:
            with self._session("check the lock"):
                row = self._sql(
                    f"SELECT EXISTS (SELECT FROM pg_locks l WHERE {_HELD} "
                    "AND l.pid = pg_backend_pid())"
                )
        except StateError:
            raise lost from None
        if not (row and row[0]):
            raise lost

    def _release(self, info: LockInfo) -> None:
        try:
            with self._session("release the lock"):
                if self._held is not info:
                    return
                self._held = None
                self._sql(f"DELETE FROM syncctl_locks WHERE {_KEY} AND lock_id = %(id)s "
                          "RETURNING 1", id=info.id)  # fmt: skip
                self._sql("SELECT pg_advisory_unlock(%(key)s)")
        except StateError:
            # Ending the session frees the advisory lock for certain; a row left is stale.
            self.close()

    def force_unlock(self, lock_id: str) -> LockInfo:
        with self._session("remove the lock") as conn, conn.transaction():
            # The row stays locked until commit, so a new run's replacing of the row waits
            # for our delete (then writes its own) instead of having its row deleted by us.
            row = self._sql(f"SELECT {_COLUMNS} FROM syncctl_locks WHERE {_KEY} FOR UPDATE")
            holder = self._holder()
            if row is None:
                if holder is None:
                    raise self._error("not locked")
                raise self._error(f"locked by {holder.holder}; it has no lock id to remove")
            found = self._info(row)
            if found.id != lock_id:
                raise self._error(
                    f"lock id {lock_id} does not match the lock, which is {found.describe()}; "
                    "nothing removed"
                )
            # Terminate only a session that verifiably holds the lock: a dead holder's
            # backend_pid may belong to an unrelated session by now.
            if holder is not None and holder.id == lock_id:
                # PostgreSQL 14+ waits (up to 10 s) for the session to end, so the lock is
                # free when force-unlock returns.
                wait = ", 10000" if conn.info.server_version >= 140000 else ""
                self._sql(f"SELECT pg_terminate_backend(%(bpid)s{wait})", bpid=int(row[7]))
            self._sql(f"DELETE FROM syncctl_locks WHERE {_KEY} RETURNING 1")
        return found

    def list_states(self) -> Sequence[State]:
        with self._session("list the states") as conn:
            rows = conn.execute(
                "SELECT policy, document FROM syncctl_state WHERE tenant = %(tenant)s "
                "ORDER BY policy",
                self._params,
            ).fetchall()
        where = f"{self._prefix} ({self._location})"
        # An unreadable state of another policy fails the listing: what it claims is unknown.
        return [
            parse_state(str(doc), f"{where}: policy {name}", policy=str(name), tenant=self._tenant)
            for name, doc in rows
        ]

    # ---- blobs -----------------------------------------------------------------------
    def save_blob(self, name: str, data: bytes) -> None:
        check_blob_name(name)
        with self._session(f"save blob {name}"):
            self._sql(
                "INSERT INTO syncctl_blobs (policy, tenant, name, data) "
                "VALUES (%(policy)s, %(tenant)s, %(name)s, %(data)s) "
                "ON CONFLICT (policy, tenant, name) "
                "DO UPDATE SET data = EXCLUDED.data, saved_at = now() RETURNING 1",
                name=name,
                data=data,
            )

    def load_blob(self, name: str) -> bytes | None:
        check_blob_name(name)
        with self._session(f"load blob {name}") as conn:
            # Binary results: a 40 MB bytea is not sent (and parsed) as 80 MB of hex.
            row = conn.execute(
                f"SELECT data FROM syncctl_blobs WHERE {_KEY} AND name = %(name)s",
                {**self._params, "name": name},
                binary=True,
            ).fetchone()
        return None if row is None else bytes(row[0])

    def prune_blobs(self, keep: Collection[str]) -> None:
        gone = f"DELETE FROM syncctl_blobs WHERE {_KEY} AND NOT name = ANY(%(keep)s::text[])"
        with suppress(StateError), self._session("prune blobs"):  # a later prune tries again
            self._sql(gone + " RETURNING 1", keep=sorted(keep))

    def close(self) -> None:
        with self._guard:
            conn, self._conn, self._held = self._conn, None, None
        if conn is not None:
            conn.close()


def _line(exc: Exception) -> str:
    """libpq's message (often two lines: what failed, then a hint) as one line."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text.removeprefix("connection failed: ") or type(exc).__name__
