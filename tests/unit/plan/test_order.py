"""The order of a plan's changes, and key collisions among many objects: the fast paths the
planner takes at 100,000 users give what the plain definitions give."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncctl.plan.model import Action, Change, ChangeKind, Reason
from syncctl.plan.planner import _in_order
from tests.unit.plan.support import make_policy, plan_of, snapshot, source_user, target_snapshot

_changes = st.lists(
    st.builds(
        Change,
        # Few addresses, so that many changes share one (and sort by action, then stay put).
        address=st.sampled_from(["user/a", "user/b", "user/B", "user/é", "user/a/b", "user/"]),
        kind=st.just(ChangeKind.USER),
        action=st.sampled_from(list(Action)),
        reason=st.just(Reason.ENTERED_SCOPE),
        source_id=st.uuids().map(str),  # tells apart changes that compare equal otherwise
    ),
    max_size=40,
)


@given(_changes)
def test_changes_are_in_address_then_action_order_and_ties_keep_their_place(
    changes: list[Change],
) -> None:
    expected = sorted(changes, key=lambda c: (c.address, c.action.value))
    assert [c.source_id for c in _in_order(changes)] == [c.source_id for c in expected]


def test_three_users_mapping_to_one_username_each_name_the_other_two() -> None:
    users = [source_user(f"u-{n}", "same@contoso.com") for n in "abc"]
    plan = plan_of(make_policy(), snapshot(users), target_snapshot())
    assert plan.is_empty
    messages = sorted(e.message for e in plan.errors)
    assert len(messages) == 3
    assert "of Entra user u-a is also mapped from Entra user u-b, u-c" in messages[0]
    assert "of Entra user u-b is also mapped from Entra user u-a, u-c" in messages[1]
    assert "of Entra user u-c is also mapped from Entra user u-a, u-b" in messages[2]
