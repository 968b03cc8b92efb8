"""One real scim2-server per test session; each test gets a fresh tenant on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from syncctl.policy.model import Policy
from syncctl.targets.scim import ScimDirectory
from tests.contract.scim_harness import ScimServer, scim_policy
from tests.integration.scim.helpers import make_policy

DirectoryFactory = Callable[..., ScimDirectory]


@pytest.fixture(scope="session")
def scim_server() -> Iterator[ScimServer]:
    server = ScimServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tenant_url(scim_server: ScimServer) -> str:
    return scim_server.tenant_url()


@pytest.fixture
def token_file(tmp_path: Path, scim_server: ScimServer) -> Path:
    path = tmp_path / "scim-token"
    path.write_text(scim_server.token, encoding="utf-8")
    return path


@pytest.fixture
def raw(scim_server: ScimServer, tenant_url: str) -> Iterator[httpx.Client]:
    """A plain client on the test's tenant, to look at (or tamper with) the server directly."""
    with scim_server.client(tenant_url) as client:
        yield client


@pytest.fixture
def make_directory(tmp_path: Path, tenant_url: str, token_file: Path) -> Iterator[DirectoryFactory]:
    """Build ScimDirectory instances on the test's tenant (or another URL); all are closed."""
    made: list[ScimDirectory] = []

    def build(
        url: str | None = None,
        policy: Policy | None = None,
        bulk: bool | None = None,
        **policy_options: object,
    ) -> ScimDirectory:
        base = policy or make_policy(tmp_path, **policy_options)  # type: ignore[arg-type]
        directory = ScimDirectory(scim_policy(base, url or tenant_url, token_file), bulk=bulk)
        made.append(directory)
        return directory

    try:
        yield build
    finally:
        for directory in made:
            directory.close()


@pytest.fixture
def directory(make_directory: DirectoryFactory) -> ScimDirectory:
    return make_directory()
