"""Shared test setup: no test sees the developer's Azure or syncctl environment."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.servers.postgres", "tests.servers.azurite"]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "SYNCCTL_", "MSI_", "IDENTITY_", "ACTIONS_ID_TOKEN_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
