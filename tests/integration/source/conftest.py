"""Emulator fixtures for the source tests: a real TLS Graph + sign-in, real msal, real httpx."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.policy.model import (
    ClientSecretCredential,
    Credential,
    Endpoints,
    Policy,
    SecretRef,
    Tenant,
)
from tests.unit.source.policies import make_policy

SECRET_ENV = "SYNCCTL_TEST_EMULATOR_SECRET"


def emulator_tenant(emu: Emulator, credential: Credential | None = None) -> Tenant:
    return Tenant(
        id=emu.tenant_id,
        client_id=emu.client_id,
        credential=credential or ClientSecretCredential(SecretRef(env=SECRET_ENV)),
        endpoints=Endpoints(authority=emu.authority, graph=emu.graph),
        ca_bundle=Path(emu.ca_bundle),
    )


def emulator_policy(
    emu: Emulator, credential: Credential | None = None, **source_changes: Any
) -> Policy:
    return make_policy(tenant=emulator_tenant(emu, credential), **source_changes)


def graph_requests(emu: Emulator) -> list[tuple[str, str, str]]:
    return [r for r in emu.requests if r[1].startswith("/v1.0/")]


@pytest.fixture(scope="module")
def small_emulator() -> Iterator[Emulator]:
    with running_emulator(generate_tenant(users=400, groups=20, seed=11)) as emu:
        yield emu


@pytest.fixture
def emu(small_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The shared small emulator, with a clean fault table and request log per test."""
    monkeypatch.setenv(SECRET_ENV, small_emulator.client_secret)
    small_emulator.faults.clear()
    small_emulator.throttle(None)
    small_emulator.reset_requests()
    lifetime = small_emulator.token_lifetime
    yield small_emulator
    small_emulator.faults.clear()
    small_emulator.throttle(None)
    small_emulator.token_lifetime = lifetime


def replace_source(policy: Policy, **changes: Any) -> Policy:
    return dataclasses.replace(policy, source=dataclasses.replace(policy.source, **changes))
