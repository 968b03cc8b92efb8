"""Fixtures shared by the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncctl.emulator import Emulator
from tests.cli.delta_workspace import clean


@pytest.fixture
def emu(module_emulator: Emulator) -> Iterator[Emulator]:
    """The module's emulator (each module starts its own ``module_emulator``), with the
    faults, throttling and delta settings a test changed put back before and after it."""
    clean(module_emulator)
    yield module_emulator
    clean(module_emulator)
