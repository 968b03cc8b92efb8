"""Which target objects a policy with a lost state may claim (``syncctl.ownership``)."""

from __future__ import annotations

from syncctl.model import (
    ObjectKind,
    RemovalReason,
    SourceSnapshot,
    SourceUser,
    TargetObject,
    TargetSnapshot,
)
from syncctl.ownership import candidates, proven_claims

IN_SCOPE = "11111111-1111-1111-1111-111111111111"
LEFT = "22222222-2222-2222-2222-222222222222"
SOFT = "33333333-3333-3333-3333-333333333333"
UNKNOWN = "44444444-4444-4444-4444-444444444444"  # 404 in this tenant: another tenant's?
OTHERS = "55555555-5555-5555-5555-555555555555"


def user(external_id: str | None, key: str, managed_by: str | None = None) -> TargetObject:
    return TargetObject(ObjectKind.USER, f"t-{key}", external_id, key, True, {}, managed_by, "1")


SNAPSHOT = TargetSnapshot(
    users=(
        user(IN_SCOPE, "in-scope"),
        user(LEFT, "left"),
        user(SOFT, "soft"),
        user(UNKNOWN, "unknown"),
        user(OTHERS, "others"),
        user("employee-42", "not-a-guid"),
        user(None, "no-external-id"),
        user(IN_SCOPE.replace("1", "6"), "managed-elsewhere", managed_by="wiki"),
    ),
    groups=(),
    members={},
)
SOURCE = SourceSnapshot(
    tenant="contoso.onmicrosoft.com",
    users={IN_SCOPE: SourceUser(IN_SCOPE, {})},
    groups={},
    removed={
        LEFT: RemovalReason.OUT_OF_SCOPE,
        SOFT: RemovalReason.SOFT_DELETED,
        UNKNOWN: RemovalReason.HARD_DELETED,
    },
)


def test_scim_claims_only_object_ids_proven_in_this_tenant_and_unclaimed_elsewhere() -> None:
    found = candidates(SNAPSHOT, "vault", marks_ownership=False, claimed_elsewhere={OTHERS})
    assert set(found) == {IN_SCOPE, LEFT, SOFT, UNKNOWN}
    claims = proven_claims(found, SOURCE, marks_ownership=False)
    assert [c.key for c in claims] == ["in-scope", "left", "soft"]
    assert {c.target_id for c in claims} == {"t-in-scope", "t-left", "t-soft"}


def test_a_target_that_marks_ownership_is_its_own_proof() -> None:
    rows = TargetSnapshot(
        users=(
            user(UNKNOWN, "ours-but-hard-deleted", managed_by="vault"),
            user(LEFT, "unmarked"),
            user(SOFT, "another-policys", managed_by="wiki"),
        ),
        groups=(),
        members={},
    )
    found = candidates(rows, "vault", marks_ownership=True, claimed_elsewhere=())
    claims = proven_claims(found, SOURCE, marks_ownership=True)
    assert [c.key for c in claims] == ["ours-but-hard-deleted"]
