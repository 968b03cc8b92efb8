"""Fixtures shared by the SQLite target tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncctl.policy.model import Policy
from syncctl.targets.sqlite import SqliteDirectory
from tests.contract.policy_factory import make_policy

OWNER = "contract"
ALICE = "11111111-0000-0000-0000-000000000001"


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return make_policy(tmp_path, OWNER, user_match=("userName",))


@pytest.fixture
def target(policy: Policy) -> Iterator[SqliteDirectory]:
    directory = SqliteDirectory(policy)
    try:
        yield directory
    finally:
        directory.close()
