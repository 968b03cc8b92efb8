"""Issues 10 and 11 through the real ``syncctl`` binary: one bad value, Unicode-equal names and
an edited saved plan, on the demo snapshot policy and a generated SQLite fixture."""

from __future__ import annotations

import json
import shutil
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest

from syncctl.model import SourceUser
from tests.cli.test_plan_apply import REPO, rows, syncctl
from tests.integration.sqlite.tenant import make_tenant, write_fixture

YUSUF = "yusuf.yilmaz@contoso.com"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    shutil.copy(REPO / "policies" / "demo.yaml", tmp_path / "demo.yaml")
    shutil.copytree(REPO / "policies" / "snapshots", tmp_path / "snapshots")
    return tmp_path


def break_a_value(demo: Path) -> None:
    """Yusuf's jobTitle gets a lone UTF-16 surrogate, as Graph or a snapshot can carry it."""
    snapshot = demo / "snapshots" / "demo.json"
    text = snapshot.read_text(encoding="utf-8")
    assert text.count('"Counsel"') == 1
    snapshot.write_text(text.replace('"Counsel"', '"Coun\\ud800sel"'), encoding="utf-8")


def test_a_lone_surrogate_is_an_error_of_one_user_not_a_crashed_plan(demo: Path) -> None:
    break_a_value(demo)
    planned = syncctl("plan", "demo.yaml", "-o", "plan.json", cwd=demo)
    assert "this is a bug" not in planned.stderr and "Traceback" not in planned.stderr
    assert f'  user/{YUSUF}: policy "demo", mapping "title"' in planned.stdout
    assert "lone UTF-16 surrogate \\ud800" in planned.stdout
    assert "Error: 1 object could not be planned; it is not synced (see above)." in planned.stdout
    assert "Plan: 31 to create" in planned.stdout  # everyone else is planned
    saved = json.loads((demo / "plan.json").read_text(encoding="utf-8"))
    assert saved["summary"]["errors"] == 1
    shown = syncctl("show", "plan.json", "--format", "markdown", cwd=demo)
    assert shown.returncode == 0, shown.stderr
    assert "**1 object could not be planned**" in shown.stdout


def test_a_bad_value_never_disables_the_user_or_blocks_the_others(demo: Path) -> None:
    assert syncctl("apply", "demo.yaml", "--auto-approve", cwd=demo).returncode == 0
    break_a_value(demo)
    planned = syncctl("plan", "demo.yaml", cwd=demo)
    assert "this is a bug" not in planned.stderr
    assert "No changes. The target already matches" not in planned.stdout
    assert 'No changes for the objects of policy "demo" that could be planned.' in planned.stdout
    assert f"  user/{YUSUF}: policy" in planned.stdout
    db = demo / ".syncctl" / "demo.db"
    syncctl("apply", "demo.yaml", "--auto-approve", cwd=demo)
    assert rows(db, f"SELECT active FROM users WHERE user_name = '{YUSUF}'") == [(1,)]


def test_unicode_equal_user_names_are_errors_not_two_accounts(tmp_path: Path) -> None:
    tenant = make_tenant(5, 1, 5)
    ids = sorted(tenant.users)
    users = dict(tenant.users)
    spellings = (unicodedata.normalize("NFC", "josé"), unicodedata.normalize("NFD", "josé"))
    for uid, name in zip(ids[:2], spellings, strict=True):
        upn = f"{name}@contoso.test"
        users[uid] = SourceUser(uid, {**users[uid].attributes, "userPrincipalName": upn})
    fixture = write_fixture(tmp_path / "gen", replace(tenant, users=users))
    cwd = fixture.parent
    result = syncctl("apply", fixture.name, "--auto-approve", cwd=cwd)
    assert "is also mapped from Entra user" in result.stdout
    assert "Unicode normalisation" in result.stdout
    names = [name for (name,) in rows(cwd / "generated.db", "SELECT user_name FROM users")]
    assert len(names) == 3
    assert not [n for n in names if unicodedata.normalize("NFC", str(n)).startswith("josé")]
