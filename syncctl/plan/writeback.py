"""Writeback planning (pure): the values the application owns, compared with Entra's.

The other direction from the rest of the planner: ``writeback.attributes`` maps an Entra user
property to an expression over the *target* object's attributes; ``writeback.passwords``
names Entra users whose password the application owns. Each difference becomes an
``entra_user`` change: ``update`` in enforce mode (apply writes it through Graph), ``report``
in report mode (shown, never written).

Rules:
- Only users this policy manages on the target and that are in scope are compared; the
  password entries name their users explicitly. Protected users are never written.
- A null or empty value of the application's is not written (Entra would be cleared).
- A password is planned when syncctl has not set it yet, when the secret no longer matches
  the digest of what it set, or when Entra's ``lastPasswordChangeDateTime`` is newer than the
  one read back after syncctl set it (someone reset it in Entra). The plan never holds it:
  the change shows ``(redacted)`` and apply reveals the secret at the moment it writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from syncctl.errors import SecretError
from syncctl.expressions import DROP, CompiledExpression, EvaluationError, compile_expression
from syncctl.expressions.dates import format_entra
from syncctl.model import SourceUser, TargetObject
from syncctl.plan.model import (
    REDACTED,
    Action,
    AttributeChange,
    Change,
    ChangeKind,
    ObjectError,
    Reason,
)
from syncctl.plan.unicode import norm_key
from syncctl.policy.model import PasswordWriteback, Policy, WritebackMode
from syncctl.secrethash import PasswordSet

PASSWORD_PATH = "passwordProfile"
_PATH = attrgetter("path")


@dataclass(frozen=True, slots=True)
class EntraAccount:
    """A user of ``writeback.passwords`` as Graph answered for it (``id`` None: not found)."""

    entry: PasswordWriteback
    id: str | None
    user_principal_name: str | None = None
    last_password_change: str | None = None  # lastPasswordChangeDateTime


def plan_writeback(
    policy: Policy,
    source_users: Mapping[str, SourceUser],
    target_users: Sequence[TargetObject],
    *,
    accounts: Sequence[EntraAccount] = (),
    passwords: Mapping[str, PasswordSet] | None = None,
) -> tuple[list[Change], list[ObjectError]]:
    writeback = policy.writeback
    if writeback is None:
        return [], []
    protected = frozenset(norm_key(p) for p in policy.deletion.protected)
    changes: list[Change] = []
    errors: list[ObjectError] = []
    if writeback.attributes:
        action = _action(writeback.mode)
        compiled = [
            (m.target, compile_expression(m.expression, on_create=False, target_paths=True))
            for m in writeback.attributes
        ]
        for obj in target_users:
            source = source_users.get(obj.external_id or "")
            if obj.managed_by != policy.name or source is None:
                continue
            upn = str(source.attributes.get("userPrincipalName") or obj.key)
            if _protected(protected, source.id, upn):
                continue
            address = f"entra_user/{upn}"
            try:
                differences = _differences(compiled, source, obj)
            except EvaluationError as exc:
                errors.append(ObjectError(address, f"writeback: {exc.message}"))
                continue
            if differences:
                changes.append(
                    Change(
                        address,
                        ChangeKind.ENTRA_USER,
                        action,
                        Reason.ENTRA_DIFFERS,
                        source_id=source.id,
                        attributes=tuple(sorted(differences, key=_PATH)),
                    )
                )
    for account in accounts:
        planned = _password(account, protected, passwords or {})
        if isinstance(planned, ObjectError):
            errors.append(planned)
        elif planned is not None:
            changes.append(planned)
    return changes, errors


def _password(
    account: EntraAccount, protected: frozenset[str], records: Mapping[str, PasswordSet]
) -> Change | ObjectError | None:
    entry = account.entry
    upn = account.user_principal_name or entry.user
    address = f"entra_user/{upn}/{PASSWORD_PATH}"
    if account.id is None:
        return ObjectError(address, f"writeback.passwords: no Entra user {entry.user}")
    if _protected(protected, account.id, upn):
        return None
    try:
        secret = entry.secret.reveal()
    except SecretError as exc:
        return ObjectError(address, f"writeback.passwords: {exc}")
    record = records.get(account.id)
    if record is None:
        reason = Reason.PASSWORD_NOT_SET
    elif not record.digest.matches(secret):
        reason = Reason.PASSWORD_SECRET_CHANGED
    elif _later(account.last_password_change, record.changed_at):
        reason = Reason.PASSWORD_CHANGED_IN_ENTRA
    else:
        return None
    return Change(
        address,
        ChangeKind.ENTRA_USER,
        _action(entry.mode),
        reason,
        source_id=account.id,
        attributes=(password_attribute(),),
    )


def _differences(
    compiled: Sequence[tuple[str, CompiledExpression]], source: SourceUser, obj: TargetObject
) -> list[AttributeChange]:
    found = []
    for prop, expression in compiled:
        wanted = _wanted(expression.evaluate(obj.attributes))
        if wanted is None:
            continue
        entra = source.attributes.get(prop)
        if isinstance(entra, list) and not isinstance(wanted, list):
            wanted = [wanted]  # businessPhones and the like are collections in Graph
        if entra != wanted:
            found.append(AttributeChange(prop, entra, wanted))
    return found


def password_attribute() -> AttributeChange:
    """A password as every plan holds it: named, never its value."""
    return AttributeChange(PASSWORD_PATH, None, REDACTED, redacted=True)


def _action(mode: WritebackMode) -> Action:
    return Action.UPDATE if mode is WritebackMode.ENFORCE else Action.REPORT


def _protected(protected: frozenset[str], entra_id: str, upn: str) -> bool:
    return norm_key(entra_id) in protected or norm_key(upn) in protected


def _wanted(value: Any) -> Any:
    """The application's value as Graph takes it; None: nothing to write."""
    if value is DROP or value is None or value in ("", []):
        return None
    if isinstance(value, datetime):
        return format_entra(value)
    return value


def _later(entra: str | None, recorded: str | None) -> bool:
    if entra is None or recorded is None:
        return False  # nothing to compare: never a false "changed in Entra"
    try:
        return datetime.fromisoformat(entra) > datetime.fromisoformat(recorded)
    except ValueError:
        return entra != recorded
