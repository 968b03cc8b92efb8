"""Property: whatever the tenant looked like before and looks like now, plan -> apply -> plan
is empty, and the database stays consistent. Real engine, real snapshot files, real SQLite."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncctl.model import SourceGroup, SourceSnapshot, SourceUser
from syncctl.policy.model import Deletion, DeletionAction, Policy, Threshold
from syncctl.session import open_session
from syncctl.source import write_snapshot
from tests.contract.policy_factory import make_policy
from tests.integration.sqlite.dbstate import check_integrity

USERS = [f"00000000-0000-0000-0000-{n:012d}" for n in range(8)]
GROUPS = [f"00000000-0000-0000-0001-{n:012d}" for n in range(3)]
SCOPE = "00000000-0000-0000-0002-000000000000"


@st.composite
def tenants(draw: st.DrawFn) -> SourceSnapshot:
    present = draw(st.lists(st.sampled_from(USERS), unique=True))
    users = {
        uid: SourceUser(
            uid,
            {
                "id": uid,
                "userPrincipalName": f"user{uid[-2:]}@contoso.test",
                "displayName": draw(st.sampled_from(["A", "B", "Carol"])),
                "givenName": draw(st.one_of(st.none(), st.sampled_from(["x", "y"]))),
                "surname": "S",
                "mail": draw(st.one_of(st.none(), st.just(f"m{uid[-2:]}@contoso.test"))),
                "department": draw(st.sampled_from(["Finance", "Legal", None])),
                "accountEnabled": draw(st.booleans()),
                "userType": "Member",
            },
        )
        for uid in present
    }
    in_scope = draw(st.lists(st.sampled_from(present), unique=True)) if present else []
    groups = {
        SCOPE: SourceGroup(SCOPE, {"id": SCOPE, "displayName": "Users"}, tuple(sorted(in_scope)))
    }
    for n, gid in enumerate(GROUPS):
        if draw(st.booleans()):
            members = draw(st.lists(st.sampled_from(present), unique=True)) if present else []
            groups[gid] = SourceGroup(
                gid, {"id": gid, "displayName": f"Team-{n}"}, tuple(sorted(members))
            )
    return SourceSnapshot(tenant="contoso.onmicrosoft.com", users=users, groups=groups)


def plan_and_apply(policy: Policy, tenant: SourceSnapshot) -> None:
    assert policy.tenant.snapshot is not None
    write_snapshot(tenant, policy.tenant.snapshot)
    with open_session([policy], operation="apply") as session:
        plan = session.plan()  # refusals are the CLI's business (--allow-mass-delete)
        result = session.apply(plan)
        assert result.failed == 0, [r.outcome for rep in result.reports for r in rep.failed]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(tenants(), min_size=1, max_size=3),
    rule=st.sampled_from(list(DeletionAction)),
)
def test_plan_apply_plan_is_empty(
    tmp_path_factory: pytest.TempPathFactory, history: list[SourceSnapshot], rule: DeletionAction
) -> None:
    directory = tmp_path_factory.mktemp("converge")
    policy = make_policy(
        directory,
        "converge",
        group_pattern="^Team-",
        deletion=Deletion(
            out_of_scope=rule,
            disabled=rule,
            max_deletes=Threshold(percent=100.0),
            max_disables=Threshold(percent=100.0),
        ),
    )
    for tenant in history:
        plan_and_apply(policy, tenant)
    with open_session(
        [policy], operation="plan", clock=lambda: datetime(2026, 11, 22, tzinfo=UTC)
    ) as session:
        again = session.plan()
    assert again.is_empty, [c.address for p in again.policies for c in p.changes]
    # No check that the database exists: only an apply that writes creates it, and a history
    # in which nobody ever was in scope writes nothing.
    check_integrity(policy.target.path)  # type: ignore[union-attr]
