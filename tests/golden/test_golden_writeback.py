"""Golden writeback plans: ``entra_user`` changes (enforce and report, passwords) in the text,
JSON and markdown plans. Built from Change objects (``tests.golden.writeback``), not through
the planner, so these pin the renderers alone.

The expected outputs live in writeback/<scenario>/; regenerate them like the others with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden`` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncctl.plan.planfile import loads, plan_to_dict
from tests.golden.test_golden import assert_golden, outputs
from tests.golden.writeback import SCENARIOS, SECRETS

FOLDER = Path(__file__).parent / "writeback"
NAMES = sorted(SCENARIOS)


@pytest.mark.parametrize("name", NAMES)
def test_golden_writeback_plan(name: str) -> None:
    assert_golden(FOLDER / name, plan_to_dict(SCENARIOS[name]()), f"writeback/{name}")


@pytest.mark.parametrize("name", NAMES)
def test_saved_writeback_plan_loads_back_and_renders_like_the_live_one(name: str) -> None:
    document = plan_to_dict(SCENARIOS[name]())
    saved = loads((FOLDER / name / "plan.json").read_text(encoding="utf-8"))
    assert saved == document
    assert outputs(saved) == outputs(document)


@pytest.mark.parametrize("name", NAMES)
def test_no_golden_writeback_output_holds_a_password(name: str) -> None:
    for file in ("plan.txt", "plan.json", "plan.md"):
        content = (FOLDER / name / file).read_text(encoding="utf-8")
        assert "(redacted)" in content
        for secret in SECRETS:
            assert secret not in content, f"writeback/{name}/{file} shows a password"
