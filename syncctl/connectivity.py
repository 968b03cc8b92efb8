"""Can each policy reach its source and its target right now?

``check_connection`` signs in to Entra (or loads the snapshot) and reaches the target, and
classifies each side as ``connected``, ``unauthorized`` (the credential was refused),
``forbidden`` (accepted, but a needed permission is missing) or ``unreachable``, from the
exception types sign-in and targets raise (``SignInRefused`` carries Entra's AADSTS code,
``TargetRefused`` the HTTP status), never from message wording. ``syncctl status --check``
shows it per policy; ``validate --online`` words the same check as what was verified
(``check_online``), so the CLI never calls a policy "ok" for a check it did not make.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from syncctl.errors import (
    AuthError,
    PermissionsMissing,
    SecretError,
    SignInRefused,
    SignInRequired,
    SignInUnreachable,
    SnapshotError,
    SyncctlError,
    TargetRefused,
)
from syncctl.policy.model import InteractiveCredential, Policy, SqliteTarget

# Checks mostly wait on the network; MSPs check hundreds of policies at once.
MAX_WORKERS = 8


class Connection(StrEnum):
    CONNECTED = "connected"
    UNAUTHORIZED = "unauthorized"  # the credential was refused (or cannot be used at all)
    FORBIDDEN = "forbidden"  # accepted, but a permission the policy needs is missing
    UNREACHABLE = "unreachable"  # no answer, or not one from the service the policy names


class Side(StrEnum):
    SOURCE = "source"
    TARGET = "target"


@dataclass(frozen=True, slots=True)
class SideCheck:
    """One side of a policy: its status and ``detail`` (one line, no secret)."""

    side: Side
    status: Connection
    detail: str
    code: str | None = None  # Entra's AADSTS code of a refused sign-in, when it gave one
    missing_permissions: tuple[str, ...] = ()  # forbidden source: the permission names
    failures: tuple[str, ...] = ()  # validate's lines: one per missing permission
    verified: str | None = None  # validate's words for what passed over the network
    unchecked: tuple[str, ...] = ()  # what there was no way to check
    local: bool = False  # checked on this machine only (a SQLite file): nothing online

    @property
    def connected(self) -> bool:
        return self.status is Connection.CONNECTED


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """Both sides of one policy. ``status`` and the fields beside it are the source's when
    the source failed (nothing is synced without it), else the target's."""

    policy: Policy
    source: SideCheck
    target: SideCheck

    @property
    def primary(self) -> SideCheck:
        return self.target if self.source.connected else self.source

    @property
    def failed(self) -> tuple[SideCheck, ...]:
        return tuple(side for side in (self.source, self.target) if not side.connected)

    @property
    def status(self) -> Connection:
        return self.primary.status

    @property
    def connected(self) -> bool:
        return not self.failed

    @property
    def detail(self) -> str:
        if self.connected:
            return f"{self.source.detail}; {self.target.detail}"
        return self.primary.detail

    def as_dict(self) -> dict[str, Any]:
        """The ``connection`` object of ``status --check --format json``."""
        primary = self.primary
        return {
            "status": str(self.status),
            "side": None if self.connected else str(primary.side),
            "detail": self.detail,
            "code": primary.code,
            "missing_permissions": list(primary.missing_permissions),
            "unchecked": [
                f"{side.side}: {note}"
                for side in (self.source, self.target)
                for note in side.unchecked
            ],
            **{
                str(side.side): {"status": str(side.status), "detail": side.detail}
                for side in (self.source, self.target)
            },
        }


def check_connection(policy: Policy) -> ConnectionCheck:
    """Both sides of ``policy``, each checked whether or not the other failed."""
    return ConnectionCheck(policy, check_source_side(policy), check_target_side(policy))


def check_connections(
    policies: Sequence[Policy], *, max_workers: int = MAX_WORKERS
) -> list[ConnectionCheck]:
    """``check_connection`` for each policy, several at once, in the order given."""
    if len(policies) <= 1:
        return [check_connection(policy) for policy in policies]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(policies))) as pool:
        return list(pool.map(check_connection, policies))


def check_source_side(policy: Policy) -> SideCheck:
    """The snapshot loads, or the credential signs in and its token holds the application
    permissions the policy needs."""
    from syncctl.source import check_source

    source = Side.SOURCE
    try:
        notes = check_source(policy)
    except PermissionsMissing as exc:
        names = exc.permissions
        them = "it" if len(names) == 1 else "them"
        delegated = isinstance(policy.tenant.credential, InteractiveCredential)
        detail = (
            (
                f"signed in to Entra, but the sign-in lacks {_names(names, 'delegated')}; "
                f"add {them} to the app registration, grant admin consent and sign in again"
                if delegated
                else f"signed in to Entra, but the app registration lacks {_names(names)}; "
                f"add {them} and grant admin consent"
            )
            if names
            else str(exc)
        )
        return SideCheck(
            source,
            Connection.FORBIDDEN,
            detail,
            missing_permissions=names,
            failures=exc.lines or (str(exc),),
        )
    except SignInRefused as exc:
        return _failed(source, Connection.UNAUTHORIZED, exc, code=exc.code)
    except SignInRequired as exc:
        # An interactive credential nobody signed in with (or whose sign-in lapsed): the
        # fix is `syncctl login`, which the message names; no check ever prompts.
        return _failed(source, Connection.UNAUTHORIZED, exc)
    except (SignInUnreachable, SnapshotError) as exc:
        return _failed(source, Connection.UNREACHABLE, exc)
    except (AuthError, SecretError) as exc:
        # The credential cannot even be used: a secret not set, a certificate that does not
        # load, a federated token source that is not there.
        return _failed(source, Connection.UNAUTHORIZED, exc)
    except SyncctlError as exc:
        return _failed(source, Connection.UNREACHABLE, exc)
    verified = "snapshot read" if policy.tenant.snapshot is not None else "signed in to Entra"
    detail = "; ".join((verified, *notes))
    return SideCheck(source, Connection.CONNECTED, detail, verified=verified, unchecked=notes)


def check_target_side(policy: Policy) -> SideCheck:
    """The target answers and accepts its credentials; a SQLite file can be opened, or
    created where it is to be."""
    from syncctl.targets.base import open_target

    if isinstance(policy.target, SqliteTarget):
        return check_sqlite_path(policy.target.path)
    side = Side.TARGET
    try:
        target = open_target(policy)
        try:
            check = getattr(target, "check", None)
            if not callable(check):
                note = f"{policy.target.type} target has no online check"
                return SideCheck(side, Connection.CONNECTED, note, unchecked=(note,))
            check()
        finally:
            target.close()
    except TargetRefused as exc:
        status = Connection.FORBIDDEN if exc.status == 403 else Connection.UNAUTHORIZED
        return _failed(side, status, exc)
    except SecretError as exc:
        return _failed(side, Connection.UNAUTHORIZED, exc)
    except SyncctlError as exc:
        return _failed(side, Connection.UNREACHABLE, exc)
    return SideCheck(side, Connection.CONNECTED, "target answered", verified="target answered")


def check_sqlite_path(path: Path) -> SideCheck:
    """An existing database must open (read-only: a check writes nothing, migrates nothing)
    and be writable; a missing one is connected when apply can create it, that is when its
    nearest existing ancestor is a writable directory (apply creates missing directories)."""
    side = Side.TARGET
    where = f"sqlite {path}"
    try:
        if path.exists():
            if not path.is_file():
                return _local(Connection.UNREACHABLE, f"{where}: not a file")
            if not os.access(path, os.R_OK | os.W_OK):
                return _local(Connection.UNREACHABLE, f"{where}: not readable and writable")
            _read_schema(path)
            return _local(Connection.CONNECTED, f"{where}: database opens")
        ancestor = next(parent for parent in path.absolute().parents if parent.exists())
        if not ancestor.is_dir():
            return _local(Connection.UNREACHABLE, f"{where}: {ancestor} is not a directory")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return _local(Connection.UNREACHABLE, f"{where}: directory {ancestor} is not writable")
    except sqlite3.Error as exc:
        return _local(Connection.UNREACHABLE, f"{where}: cannot read the database: {exc}")
    except OSError as exc:
        return _local(Connection.UNREACHABLE, f"{where}: {exc.strerror or exc}")
    return SideCheck(
        side, Connection.CONNECTED, f"{where}: does not exist yet; apply creates it", local=True
    )


def _read_schema(path: Path) -> None:
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


def _local(status: Connection, detail: str) -> SideCheck:
    failures = () if status is Connection.CONNECTED else (detail,)
    return SideCheck(Side.TARGET, status, detail, failures=failures, local=True)


def _failed(
    side: Side, status: Connection, exc: SyncctlError, *, code: str | None = None
) -> SideCheck:
    return SideCheck(side, status, str(exc), code=code, failures=(str(exc),))


def _names(names: Sequence[str], kind: str = "application") -> str:
    label = f"{kind} permission" if len(names) == 1 else f"{kind} permissions"
    return f"the {label} {', '.join(names)}"


# --- validate --online ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnlineCheck:
    policy: Policy
    verified: tuple[str, ...]  # e.g. ("signed in to Entra", "target answered")
    failures: tuple[str, ...]  # one line each, e.g. "source: AADSTS7000215 ..."
    unchecked: tuple[str, ...] = ()  # what there was no way to check, e.g. a SQLite target

    @property
    def ok(self) -> bool:
        return not self.failures


def check_online(policies: Sequence[Policy]) -> list[OnlineCheck]:
    """One ``OnlineCheck`` per policy, in order: the source (snapshot loads, or the credential
    signs in to Entra) and the target (it answers and accepts its credentials)."""
    return [_as_online(check) for check in check_connections(policies)]


def _as_online(check: ConnectionCheck) -> OnlineCheck:
    verified: list[str] = []
    failures: list[str] = []
    unchecked: list[str] = [f"source: {note}" for note in check.source.unchecked]
    for side in (check.source, check.target):
        failures.extend(f"{side.side}: {line}" for line in side.failures)
        if side.connected and side.verified is not None:
            verified.append(side.verified)
    unchecked.extend(check.target.unchecked)
    if check.target.local and check.target.connected:
        # A local file was looked at, but nothing went over the network.
        unchecked.append(f"{check.policy.target.type} target has no online check")
    return OnlineCheck(check.policy, tuple(verified), tuple(failures), tuple(unchecked))
