"""The writeback planner (pure): which users are compared, what counts as a difference, and
when a password is planned; a property test pins that enforce and report plan the same
differences and that a converged Entra plans none."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncctl.plan.model import Action, Reason
from syncctl.plan.writeback import EntraAccount, plan_writeback
from syncctl.policy.model import (
    AttributeMapping,
    PasswordWriteback,
    Policy,
    SecretRef,
    Writeback,
    WritebackMode,
)
from syncctl.secrethash import PasswordSet, digest_secret
from tests.unit.plan.support import make_policy, source_user, target_user

ENV = "SYNCCTL_TEST_WRITEBACK_SECRET"
MOBILE = 'phoneNumbers[type eq "mobile"].value'


def policy_with(writeback: Writeback, **deletion: Any) -> Policy:
    return replace(make_policy(**deletion), writeback=writeback)


ATTRIBUTES = Writeback(
    mode=WritebackMode.ENFORCE,
    attributes=(
        AttributeMapping("jobTitle", "[title]"),
        AttributeMapping("mobilePhone", f"[{MOBILE}]"),
        AttributeMapping("businessPhones", '[phoneNumbers[type eq "work"].value]'),
    ),
)


def test_only_managed_users_in_scope_and_only_what_differs() -> None:
    users = {
        "e1": source_user("e1", "a@contoso.com", jobTitle="Clerk", mobilePhone="+1"),
        "e2": source_user("e2", "b@contoso.com", jobTitle="Ops", businessPhones=[]),
        "e3": source_user("e3", "c@contoso.com", jobTitle="Old"),
    }
    target = [
        target_user("t1", "a@contoso.com", "e1", title="Admin", **{MOBILE: "+1"}),
        target_user(
            "t2", "b@contoso.com", "e2", title="Ops", **{'phoneNumbers[type eq "work"].value': "+2"}
        ),
        target_user("t3", "c@contoso.com", "e3", managed_by="another", title="New"),  # not ours
        target_user("t4", "d@contoso.com", "e4", title="New"),  # not in scope
        target_user("t5", "e@contoso.com", "e1x", title=None),
    ]
    changes, errors = plan_writeback(policy_with(ATTRIBUTES), users, target)
    assert errors == []
    got = {c.address: [(a.path, a.before, a.after) for a in c.attributes] for c in changes}
    assert got == {
        "entra_user/a@contoso.com": [("jobTitle", "Clerk", "Admin")],
        # a collection property gets a list
        "entra_user/b@contoso.com": [("businessPhones", [], ["+2"])],
    }
    assert {(c.action, c.reason) for c in changes} == {(Action.UPDATE, Reason.ENTRA_DIFFERS)}


def test_empty_values_are_never_written_and_protected_users_never_compared() -> None:
    users = {
        "e1": source_user("e1", "a@contoso.com", jobTitle="Clerk"),
        "e2": source_user("e2", "b@contoso.com", jobTitle="Clerk"),
    }
    target = [
        target_user("t1", "a@contoso.com", "e1", title=""),
        target_user("t2", "b@contoso.com", "e2", title="Boss"),
    ]
    policy = policy_with(ATTRIBUTES, protected=("B@contoso.com",))
    assert plan_writeback(policy, users, target) == ([], [])


def account(mode: WritebackMode = WritebackMode.ENFORCE, **kwargs: Any) -> EntraAccount:
    entry = PasswordWriteback("svc@contoso.com", SecretRef(env=ENV), mode=mode)
    values = {"id": "svc-id", "user_principal_name": "svc@contoso.com"} | kwargs
    return EntraAccount(entry, **values)


@pytest.mark.parametrize(
    ("record", "entra_changed", "reason"),
    [
        (None, None, Reason.PASSWORD_NOT_SET),
        ("other", "2026-01-01T00:00:00Z", Reason.PASSWORD_SECRET_CHANGED),
        ("same", "2026-01-02T00:00:00Z", Reason.PASSWORD_CHANGED_IN_ENTRA),
        ("same", "2026-01-01T00:00:00Z", None),
        ("same", None, None),  # Entra did not say: never a false "changed in Entra"
    ],
)
def test_when_a_password_is_planned(
    monkeypatch: pytest.MonkeyPatch,
    record: str | None,
    entra_changed: str | None,
    reason: Reason | None,
) -> None:
    monkeypatch.setenv(ENV, "S3cret-value!")
    records = {}
    if record is not None:
        secret = "S3cret-value!" if record == "same" else "an older one"
        records["svc-id"] = PasswordSet(digest_secret(secret), "2026-01-01T00:00:00Z")
    policy = policy_with(Writeback(passwords=(account().entry,)))
    changes, errors = plan_writeback(
        policy, {}, [], accounts=[account(last_password_change=entra_changed)], passwords=records
    )
    assert errors == []
    assert [c.reason for c in changes] == ([] if reason is None else [reason])
    for change in changes:
        assert change.address == "entra_user/svc@contoso.com/passwordProfile"
        assert [(a.path, a.after, a.redacted) for a in change.attributes] == [
            ("passwordProfile", "(redacted)", True)
        ]
        assert "S3cret-value!" not in repr(change)


def test_missing_users_and_unreadable_secrets_are_object_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    policy = policy_with(Writeback(passwords=(account().entry,)))
    _, errors = plan_writeback(policy, {}, [], accounts=[account(id=None)])
    assert [e.address for e in errors] == ["entra_user/svc@contoso.com/passwordProfile"]
    assert "no Entra user" in errors[0].message
    _, errors = plan_writeback(policy, {}, [], accounts=[account()])
    assert ENV in errors[0].message


def test_report_mode_plans_the_same_and_a_protected_account_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, "S3cret-value!")
    policy = policy_with(Writeback(passwords=(account(WritebackMode.REPORT).entry,)))
    changes, _ = plan_writeback(policy, {}, [], accounts=[account(WritebackMode.REPORT)])
    assert [c.action for c in changes] == [Action.REPORT]
    guarded = policy_with(Writeback(passwords=(account().entry,)), protected=("svc-id",))
    assert plan_writeback(guarded, {}, [], accounts=[account()]) == ([], [])


titles = st.one_of(st.none(), st.text(min_size=0, max_size=8))


@given(st.lists(st.tuples(titles, titles), min_size=1, max_size=12))
def test_enforce_and_report_agree_and_a_converged_entra_plans_nothing(
    pairs: list[tuple[str | None, str | None]],
) -> None:
    users = {
        f"e{i}": source_user(f"e{i}", f"u{i}@contoso.com", jobTitle=entra)
        for i, (entra, _) in enumerate(pairs)
    }
    target = [
        target_user(f"t{i}", f"u{i}@contoso.com", f"e{i}", title=app)
        for i, (_, app) in enumerate(pairs)
    ]
    one = Writeback(attributes=(AttributeMapping("jobTitle", "[title]"),))
    reported, _ = plan_writeback(policy_with(one), users, target)
    enforced, _ = plan_writeback(
        policy_with(replace(one, mode=WritebackMode.ENFORCE)), users, target
    )
    assert [(c.address, c.attributes) for c in reported] == [
        (c.address, c.attributes) for c in enforced
    ]
    assert {c.action for c in reported} <= {Action.REPORT}
    # Entra after an apply of the enforced plan holds the written values: nothing left.
    written = {c.source_id: c.attributes[0].after for c in enforced}
    after = {
        uid: replace(
            u, attributes={**u.attributes, "jobTitle": written.get(uid, u.attributes["jobTitle"])}
        )
        for uid, u in users.items()
    }
    assert plan_writeback(policy_with(one), after, target) == ([], [])
