"""The engine API the CLI is a thin layer over: sessions, failures, saved-plan selection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncctl.errors import SnapshotError, StalePlanError
from syncctl.plan.planfile import dumps, plan_to_dict
from syncctl.policy import load_policies
from syncctl.policy.model import Policy
from syncctl.saved import saved_policies, select_saved
from syncctl.session import open_session
from syncctl.state import load_state, lock_path_for
from tests.integration.sqlite.tenant import make_tenant, write_fixture


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    (loaded,) = load_policies([write_fixture(tmp_path, make_tenant(12, 2, 20))])
    return loaded


def test_a_failed_source_read_aborts_and_is_recorded(policy: Policy) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise SnapshotError("tenant.json: /users/3: 'id' is a required property")

    with (
        pytest.raises(SnapshotError),
        open_session([policy], operation="apply", read_source=broken) as session,
    ):
        session.plan()
    state = load_state(policy.state.path, policy.name)
    assert state.last_run is not None
    assert state.last_run.outcome == "failed"
    assert state.last_run.error == "tenant.json: /users/3: 'id' is a required property"
    assert not lock_path_for(policy.state.path).exists()
    assert not policy.target.path.exists() or _users(policy) == 0  # type: ignore[union-attr]


def _users(policy: Policy) -> int:
    import sqlite3

    with sqlite3.connect(policy.target.path) as conn:  # type: ignore[union-attr]
        return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])


def test_a_subset_of_a_saved_plan_applies_only_that_subset(policy: Policy) -> None:
    with open_session([policy], operation="plan") as session:
        saved = json.loads(dumps(session.plan()))
    # A reviewer trims the plan to the user creates only.
    saved["policies"][0]["changes"] = [
        c for c in saved["policies"][0]["changes"] if c["kind"] == "user"
    ]
    assert saved_policies(saved, [policy]) == [policy]
    with open_session([policy], operation="apply") as session:
        fresh = session.plan()
        selection = select_saved(saved, fresh)
        result = session.apply(fresh, selection=selection)
    assert result.failed == 0
    assert _users(policy) == 12
    with open_session([policy], operation="plan") as session:
        after = plan_to_dict(session.plan())
    kinds = {c["kind"] for c in after["policies"][0]["changes"]}
    assert kinds == {"group", "membership"}


def test_a_saved_change_that_moved_on_is_stale(policy: Policy) -> None:
    with open_session([policy], operation="plan") as session:
        saved = json.loads(dumps(session.plan()))
    change = saved["policies"][0]["changes"][0]
    change["attributes"][0]["after"] = "something else"
    with open_session([policy], operation="apply") as session:
        fresh = session.plan()
        with pytest.raises(StalePlanError, match=change["address"]):
            select_saved(saved, fresh)


def test_saved_plan_for_an_unknown_policy_names_it(policy: Policy) -> None:
    with open_session([policy], operation="plan") as session:
        saved = json.loads(dumps(session.plan()))
    saved["policies"][0]["name"] = "elsewhere"
    with pytest.raises(Exception, match='saved plan is for policy "elsewhere"'):
        saved_policies(saved, [policy])
