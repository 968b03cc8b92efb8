"""Writeback: the ``entra_user`` changes of a plan, written to Entra with ``PATCH /users/{id}``.

The applier hands this writer the changes of its Entra phase as it hands a target its own;
one Outcome per change, in order. Each change is one PATCH that sends exactly the properties
the change names, all at once (user-update: "supply only the values for properties to
update"). A password is never in the plan: the change names ``passwordProfile`` and the
writer reveals the secret of ``passwords[<Entra id>]`` only to build that PATCH, keeps a
scrypt digest of it (``password_records``) and reads Entra's ``lastPasswordChangeDateTime``
back, so a later plan can tell a changed secret or a reset in Entra from a password that is
still the one syncctl set.

Per-user failures (the user is gone, Entra refused a value or a permission is missing) are
Outcomes; only a failure of the whole service (sign-in refused, Graph unreachable or
throttled past the retry budget, the run's deadline) raises, and the applier then stops.
The password value never reaches an Outcome, an exception or a record: Graph's own messages
are masked before they are quoted.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from syncctl import redaction
from syncctl.errors import GraphError, SyncctlError, TargetError
from syncctl.model import TargetSnapshot
from syncctl.plan.model import Action, Change, ChangeKind
from syncctl.plan.writeback import PASSWORD_PATH, password_attribute
from syncctl.policy.model import SecretRef
from syncctl.secrethash import PasswordSet, digest_secret
from syncctl.source import permissions
from syncctl.source.graph import GraphClient, Request
from syncctl.source.graph_batch import RETRYABLE_STATUS
from syncctl.source.graph_errors import DENIED
from syncctl.targets.base import Capabilities, Outcome, OutcomeStatus

__all__ = ["PASSWORD_PATH", "EntraWriter", "PasswordSet", "PasswordWrite", "password_attribute"]

MAX_BATCH = 20  # changes per apply() call: a few seconds of PATCHes at most

GONE = "user no longer exists in Entra"
WEAK_PASSWORD = "Entra refused the password: it does not meet the tenant's complexity requirements"


@dataclass(frozen=True, slots=True)
class PasswordWrite:
    """How to set one user's password: where the secret lives (revealed only at the moment
    of the PATCH, never kept) and ``passwordProfile.forceChangePasswordNextSignIn``."""

    secret: SecretRef
    force_change: bool = False


class EntraWriter:
    """Writes ``entra_user`` updates through Graph; the applier's ``writeback`` writer.

    ``passwords`` is keyed by Entra object id. ``graph`` belongs to the caller (``close``
    leaves it open): the writer shares the run's signed-in client and its throttle pacing.
    """

    def __init__(self, graph: GraphClient, passwords: Mapping[str, PasswordWrite]) -> None:
        self._graph = graph
        self._passwords = dict(passwords)
        self._lock = threading.Lock()
        self.password_records: dict[str, PasswordSet] = {}  # Entra id -> the password set

    def capabilities(self) -> Capabilities:
        # Each PATCH stands alone, and Graph has no version to check a user against.
        return Capabilities(max_batch=MAX_BATCH, parallel_safe=True, versions=False)

    def apply(self, changes: Sequence[Change], owner: str) -> list[Outcome]:
        """One Outcome per change, in order; PATCHes of a batch run at most the Graph
        client's concurrency at a time. Raises SyncctlError only for the whole service."""
        return self._graph.map_bounded(self._write, changes)

    def read(self, owner: str, known_ids: Collection[str]) -> TargetSnapshot:
        raise TargetError("the Entra writer only writes; Entra users are read by the source")

    def change_marker(self) -> str | None:
        return None

    def close(self) -> None:
        """Nothing of its own to close: the Graph client is the caller's."""

    # -- one change ----------------------------------------------------------------------

    def _write(self, change: Change) -> Outcome:
        refused = _not_writable(change)
        if refused is not None:
            return _failed(change, refused)
        assert change.source_id is not None  # _not_writable checked it
        user_id = change.source_id
        properties = [a for a in change.attributes if a.path != PASSWORD_PATH]
        sets_password = any(a.path == PASSWORD_PATH for a in change.attributes)
        body: dict[str, Any] = {a.path: a.after for a in properties}
        secret: str | None = None
        if sets_password:
            wanted = self._passwords.get(user_id)
            if wanted is None:
                return _failed(change, "no password is configured for this user")
            try:
                secret = wanted.secret.reveal()
            except SyncctlError as exc:  # SecretError: never includes the value
                return _failed(change, f"cannot read the password secret: {exc}")
            body[PASSWORD_PATH] = {
                "password": secret,
                "forceChangePasswordNextSignIn": wanted.force_change,
            }
        path = f"/users/{quote(user_id, safe='')}"
        try:
            self._graph.patch(path, body)
        except GraphError as exc:
            if _whole_service(exc):
                raise _masked_error(exc, secret) from None
            return _failed(change, _refusal(exc, secret, bool(properties), sets_password))
        finally:
            body.clear()  # drop the only other reference to the secret
        if secret is not None:
            record = PasswordSet(digest_secret(secret), self._changed_at(path))
            with self._lock:
                self.password_records[user_id] = record
        return Outcome(change.address, OutcomeStatus.APPLIED, change.target_id)

    def _changed_at(self, path: str) -> str | None:
        """Entra's ``lastPasswordChangeDateTime`` after the write. The password is set
        whatever this read says: an answer without it records None rather than losing the
        record of a password that is now in Entra."""
        request = Request(path, {"$select": "lastPasswordChangeDateTime"})
        try:
            user = self._graph.get(request)
        except SyncctlError:
            return None
        value = user.get("lastPasswordChangeDateTime") if isinstance(user, dict) else None
        return value if isinstance(value, str) else None


def _not_writable(change: Change) -> str | None:
    if change.kind is not ChangeKind.ENTRA_USER or change.action is not Action.UPDATE:
        return f"the Entra writer writes entra_user updates, not {change.kind} {change.action}"
    if not change.source_id:
        return "the change names no Entra object id"
    if not change.attributes:
        return "the change names no property to write"
    return None


def _whole_service(error: GraphError) -> bool:
    """Sign-in refused (401 after a refresh), Graph unreachable or throttled past the retry
    budget (no status: the connection; 429/503/504: gave up): no other user would fare
    better, so the applier stops instead of failing each one."""
    return error.status is None or error.status == 401 or error.status in RETRYABLE_STATUS


def _refusal(error: GraphError, secret: str | None, properties: bool, password: bool) -> str:
    """The one-line reason a PATCH was refused, without the password."""
    if error.status == 404:
        return GONE
    if error.status == 403 and error.code in (DENIED, None):
        return _denied(properties, password)
    graph_said = _mask(_graph_message(error), secret)
    if password and error.status == 400 and _about_complexity(graph_said):
        return WEAK_PASSWORD
    return f"Entra refused the update: {graph_said}{_ids(error)}"


def _denied(properties: bool, password: bool) -> str:
    """Which application permission the PATCH needed (user-update, Permissions), and for a
    password the directory role Graph also wants (which no token claim shows)."""
    needs: list[str] = []
    if properties:
        needs.append(f"{permissions.by_page('user-update').lacking()} to update its properties")
    if password:
        accepted = (*permissions.PASSWORD_PROFILE.least, *permissions.PASSWORD_PROFILE.also)
        needs.append(f"{' or '.join(accepted)} to set its password")
    message = (
        "403 Authorization_RequestDenied: the app registration lacks the application "
        f"permission {'; and '.join(needs)} (grant it and admin-consent)"
    )
    return f"{message}; {permissions.PASSWORD_ROLES}" if password else message


def _about_complexity(message: str) -> bool:
    # Graph: "The specified password does not comply with password complexity requirements."
    lowered = message.lower()
    return "password" in lowered and "complex" in lowered


def _graph_message(error: GraphError) -> str:
    """Graph's own message: the error's text without the request prefix or the ids."""
    text = str(error).removeprefix(f"{error.request}: ")
    ids = (error.status, error.code, error.request_id, error.client_request_id)
    if any(v is not None for v in ids) and text.endswith(")"):
        text = text[: text.rfind(" (")]
    return text


def _ids(error: GraphError) -> str:
    details = [
        f"{label} {value}"
        for label, value in (
            ("status", error.status),
            ("code", error.code),
            ("request-id", error.request_id),
        )
        if value is not None
    ]
    return f" ({', '.join(details)})" if details else ""


def _mask(text: str, secret: str | None) -> str:
    """``text`` without the password: replaced even when too short for ``redaction`` to
    remember, then every other remembered secret."""
    if secret:
        text = text.replace(secret, redaction.REDACTED)
    return redaction.mask(text)


def _masked_error(error: GraphError, secret: str | None) -> GraphError:
    return GraphError(
        _mask(_graph_message(error), secret),
        request=error.request,
        status=error.status,
        code=error.code,
        request_id=error.request_id,
        client_request_id=error.client_request_id,
    )


def _failed(change: Change, message: str) -> Outcome:
    return Outcome(change.address, OutcomeStatus.FAILED, change.target_id, message)
