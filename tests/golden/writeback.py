"""Writeback plans built straight from Change objects (the planner's writeback is written
separately): what every renderer must show for ``entra_user`` changes.

The in-memory values of passwords are real-looking secrets marked ``redacted=True``; no
output may contain them (``SECRETS``).
"""

from __future__ import annotations

from syncctl.plan.model import (
    Action,
    AttributeChange,
    Change,
    ChangeKind,
    ObjectError,
    Plan,
    PolicyPlan,
    Reason,
)
from tests.unit.plan.support import CREATED_AT, VERSION

PASSWORD_PATH = "passwordProfile"
SECRETS = ("Pa55w0rd!backup-7f3a", "Tr0ub4dor&3-deploy", "hunter2-old-monitor")

_SHA = "ab" * 32
_TARGET = {"type": "sqlite", "path": ".syncctl/contoso.db"}
_FINGERPRINTS = {"source": "11" * 32, "target": "22" * 32}


def password(after: str, before: str | None = None) -> AttributeChange:
    """A password attribute: Entra never returns one, so ``before`` is normally None."""
    return AttributeChange(PASSWORD_PATH, before, after, redacted=True)


def password_change(
    upn: str, action: Action, reason: Reason, secret: str, *, entra_id: str,
    before: str | None = None,
) -> Change:  # fmt: skip
    """A password is its own change, addressed like the planner does it
    (``entra_user/<upn>/passwordProfile``), apart from the user's attribute changes."""
    return entra(
        f"{upn}/{PASSWORD_PATH}", action, reason, password(secret, before), entra_id=entra_id
    )


def entra(
    upn: str, action: Action, reason: Reason, *attributes: AttributeChange, entra_id: str
) -> Change:
    return Change(
        address=f"entra_user/{upn}",
        kind=ChangeKind.ENTRA_USER,
        action=action,
        reason=reason,
        source_id=entra_id,
        attributes=attributes,
    )


def policy_plan(
    name: str, changes: tuple[Change, ...], errors: tuple[ObjectError, ...] = ()
) -> PolicyPlan:
    return PolicyPlan(
        name=name,
        policy_sha256=_SHA,
        tenant="contoso.onmicrosoft.com",
        target=_TARGET,
        fingerprints=_FINGERPRINTS,
        changes=changes,
        errors=errors,
    )


def enforce_and_report() -> Plan:
    """A target update and a membership, then Entra updates (a user's attributes and its
    password, another password) and report-only differences (an attribute, a password reset
    in Entra)."""
    changes = (
        Change(
            address="user/alice@contoso.com",
            kind=ChangeKind.USER,
            action=Action.UPDATE,
            reason=Reason.ATTRIBUTES_CHANGED,
            source_id="u-alice",
            target_id="t-alice",
            attributes=(AttributeChange("title", "VP Engineering", "CTO"),),
            version="1",
        ),
        Change(
            address="membership/Vault Admins/alice@contoso.com",
            kind=ChangeKind.MEMBERSHIP,
            action=Action.ADD,
            reason=Reason.MEMBER_IN_SCOPE,
            group="g-admins",
            user="u-alice",
        ),
        entra(
            "svc-backup@contoso.com",
            Action.UPDATE,
            Reason.ENTRA_DIFFERS,
            AttributeChange("employeeId", "E-1", "E-2"),
            AttributeChange("mobilePhone", None, "+1 555 0100"),
            entra_id="e-backup",
        ),
        password_change(
            "svc-backup@contoso.com",
            Action.UPDATE,
            Reason.PASSWORD_SECRET_CHANGED,
            SECRETS[0],
            entra_id="e-backup",
        ),
        password_change(
            "svc-deploy@contoso.com",
            Action.UPDATE,
            Reason.PASSWORD_NOT_SET,
            SECRETS[1],
            entra_id="e-deploy",
        ),
        password_change(
            "svc-monitor@contoso.com",
            Action.REPORT,
            Reason.PASSWORD_CHANGED_IN_ENTRA,
            "Pa55w0rd!monitor-new",
            # A before that is a secret too (say, what syncctl once set): never shown either.
            before=SECRETS[2],
            entra_id="e-monitor",
        ),
        entra(
            "svc-report@contoso.com",
            Action.REPORT,
            Reason.ENTRA_DIFFERS,
            AttributeChange("department", "IT", "Operations"),
            AttributeChange("employeeId", "E-9", None),
            entra_id="e-report",
        ),
    )
    return Plan((policy_plan("contoso-vault", changes),), VERSION, CREATED_AT)


def entra_only() -> Plan:
    """Two policies whose targets already match: one only writes to Entra, the other only
    reports (and has an Entra user it could not plan)."""
    updates = (
        password_change(
            "svc-backup@contoso.com",
            Action.UPDATE,
            Reason.PASSWORD_NOT_SET,
            SECRETS[0],
            entra_id="e-backup",
        ),
    )
    reports = (
        entra(
            "svc-report@contoso.com",
            Action.REPORT,
            Reason.ENTRA_DIFFERS,
            AttributeChange("employeeId", "E-9", "E-10"),
            entra_id="e-report",
        ),
    )
    error = ObjectError(
        "entra_user/svc-missing@contoso.com/passwordProfile",
        "writeback.passwords: no Entra user svc-missing@contoso.com",
    )
    return Plan(
        (policy_plan("app-one", updates), policy_plan("app-two", reports, (error,))),
        VERSION,
        CREATED_AT,
    )


SCENARIOS = {"enforce-and-report": enforce_and_report, "entra-only": entra_only}
