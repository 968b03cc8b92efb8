"""The target contract suite runs once per target kind.

``sqlite`` is built in. ``scim`` comes from ``tests/contract/scim_harness.py`` (written by the
SCIM engineer): ``make_scim_target(tmp_path, policy)`` is a context manager yielding a target
against a real SCIM server. While that module is absent the scim parameter is skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from syncctl.policy.model import Policy
from syncctl.targets.base import Target
from syncctl.targets.sqlite import SqliteDirectory
from tests.contract.policy_factory import make_policy
from tests.contract.state_store import StateStore


@contextmanager
def _sqlite_target(tmp_path: Path, policy: Policy) -> Iterator[Target]:
    target = SqliteDirectory(policy)
    try:
        yield target
    finally:
        target.close()


def _scim_factory() -> object:
    try:
        harness = importlib.import_module("tests.contract.scim_harness")
    except ModuleNotFoundError as exc:
        if exc.name != "tests.contract.scim_harness":
            raise
        pytest.skip("tests/contract/scim_harness.py (SCIM engineer) is not there yet")
    return harness.make_scim_target


@pytest.fixture(params=["sqlite", "scim"])
def target_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return make_policy(tmp_path, "contract", user_match=("userName",))


@pytest.fixture
def target(target_kind: str, tmp_path: Path, policy: Policy) -> Iterator[Target]:
    manager: AbstractContextManager[Target]
    if target_kind == "sqlite":
        manager = _sqlite_target(tmp_path, policy)
    else:
        manager = _scim_factory()(tmp_path, policy)  # type: ignore[operator]
    with manager as built:
        yield built


@pytest.fixture
def local_state_store(tmp_path: Path) -> StateStore:
    """The default backend: files under ``.syncctl/`` beside the policies."""
    directory = tmp_path / "policies" / ".syncctl"

    def write_raw(policy: str, tenant: str, text: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{policy}.state.json").write_text(text, encoding="utf-8")

    return StateStore(kind="local", section={"backend": "local"}, write_raw=write_raw)
