"""Golden plans: each folder under scenarios/ holds scenario.yaml (policy, source, target,
state) and the expected plan.txt, plan.json and plan.md.

``state`` may hold ``disabled_at`` (Entra id -> when syncctl disabled it) and ``synced``
(Entra id -> the compared values syncctl last wrote; the planner gets their synced_digest).

Regenerate after an intended change with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden``
and review the diff. (Not SYNCCTL_*: tests/conftest.py strips those from the environment.)
The real expression engine maps the objects (``syncctl.mapping.Mapper``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from syncctl.plan.diff import synced_digest
from syncctl.plan.planfile import dumps, loads, plan_schema, plan_to_dict
from syncctl.plan.planner import plan_policy
from syncctl.render import json as json_render
from syncctl.render import markdown, text
from tests.unit.plan.support import (
    NOW,
    scenario_policy,
    scenario_source,
    scenario_target,
    whole_plan,
)

SCENARIOS = Path(__file__).parent / "scenarios"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")  # read before fixtures run
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "scenario.yaml").exists())


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def build(folder: Path) -> dict[str, Any]:
    spec = yaml.safe_load((folder / "scenario.yaml").read_text(encoding="utf-8"))
    state = spec.get("state") or {}
    plan = plan_policy(
        scenario_policy(spec.get("policy") or {}),
        scenario_source(spec.get("source") or {}),
        scenario_target(spec.get("target") or {}),
        disabled_at={k: _when(v) for k, v in (state.get("disabled_at") or {}).items()},
        now=_when(spec["now"]) if "now" in spec else NOW,
        synced={k: synced_digest(v) for k, v in (state.get("synced") or {}).items()},
    )
    return plan_to_dict(whole_plan(plan))


def outputs(document: dict[str, Any]) -> dict[str, str]:
    return {
        "plan.txt": text.render(document),
        "plan.json": json_render.render(document),
        "plan.md": markdown.render(document),
    }


def test_every_scenario_folder_is_complete() -> None:
    assert len(NAMES) >= 12
    if not UPDATE:
        for name in NAMES:
            for file in ("plan.txt", "plan.json", "plan.md"):
                assert (SCENARIOS / name / file).exists(), f"{name}/{file} missing"


@pytest.mark.parametrize("name", NAMES)
def test_golden_plan(name: str) -> None:
    folder = SCENARIOS / name
    assert_golden(folder, build(folder), name)


def assert_golden(folder: Path, document: dict[str, Any], label: str) -> None:
    """Every rendering of ``document`` equals its file in ``folder`` (written first with
    UPDATE_GOLDEN=1); the JSON also matches the plan schema."""
    rendered = outputs(document)
    jsonschema.validate(json.loads(rendered["plan.json"]), plan_schema())
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for file, content in rendered.items():
            (folder / file).write_text(content, encoding="utf-8")
    for file, content in rendered.items():
        expected = (folder / file).read_text(encoding="utf-8")
        assert content == expected, f"{label}/{file} differs (UPDATE_GOLDEN=1 to regenerate)"


@pytest.mark.parametrize("name", NAMES)
def test_saved_plan_renders_exactly_like_the_live_plan(name: str) -> None:
    document = build(SCENARIOS / name)
    assert build(SCENARIOS / name) == document  # deterministic
    saved = loads((SCENARIOS / name / "plan.json").read_text(encoding="utf-8"))
    assert outputs(saved) == outputs(document)


def test_golden_json_is_what_dumps_writes() -> None:
    folder = SCENARIOS / "new-tenant"
    spec = yaml.safe_load((folder / "scenario.yaml").read_text(encoding="utf-8"))
    plan = whole_plan(
        plan_policy(
            scenario_policy(spec.get("policy") or {}),
            scenario_source(spec["source"]),
            scenario_target(spec.get("target") or {}),
            disabled_at={},
            now=NOW,
        )
    )
    assert dumps(plan) == (folder / "plan.json").read_text(encoding="utf-8")
