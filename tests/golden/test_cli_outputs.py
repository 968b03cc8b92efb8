"""The renderers and plan files through the real ``syncctl`` binary, on the demo policy:
JSON matches the schema, a saved plan shows exactly like the live one, markdown stays small,
a damaged plan file is a one-line error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from syncctl.plan.planfile import plan_schema

ROOT = Path(__file__).resolve().parents[2]
SYNCCTL = Path(sys.executable).with_name("syncctl")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYNCCTL), *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "policies" / "demo.yaml", tmp_path / "demo.yaml")
    shutil.copytree(ROOT / "policies" / "snapshots", tmp_path / "snapshots")
    return tmp_path


def test_plan_json_validates_and_a_saved_plan_shows_like_the_live_one(demo: Path) -> None:
    as_json = run("plan", "demo.yaml", "--format", "json", cwd=demo)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    jsonschema.validate(document, plan_schema())
    assert document["summary"]["create"] > 0
    assert document["policies"][0]["name"] == "demo"

    live = run("plan", "demo.yaml", "-o", "plan.json", cwd=demo)
    assert live.returncode == 0, live.stderr
    assert "\x1b[" not in live.stdout  # not a terminal, NO_COLOR: no colour
    shown = run("show", "plan.json", cwd=demo)
    assert shown.returncode == 0, shown.stderr
    assert live.stdout.startswith(shown.stdout)
    assert shown.stdout.startswith('syncctl will perform the following actions for policy "demo"')

    saved = (demo / "plan.json").read_text(encoding="utf-8")
    assert run("show", "plan.json", "--format", "json", cwd=demo).stdout == saved

    markdown = run("show", "plan.json", "--format", "markdown", cwd=demo)
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("## syncctl plan for `demo`")
    assert len(markdown.stdout) < 60_000


def test_a_damaged_plan_file_is_a_one_line_error(demo: Path) -> None:
    assert run("plan", "demo.yaml", "-o", "plan.json", cwd=demo).returncode == 0
    document = json.loads((demo / "plan.json").read_text(encoding="utf-8"))
    document["policies"][0]["changes"][0]["action"] = "explode"
    (demo / "plan.json").write_text(json.dumps(document), encoding="utf-8")
    shown = run("show", "plan.json", cwd=demo)
    assert shown.returncode == 1
    assert "Traceback" not in shown.stderr
    assert len(shown.stderr.strip().splitlines()) == 1
    assert "invalid syncctl plan at $.policies[0].changes[0]" in shown.stderr
