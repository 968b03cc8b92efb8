"""plan / apply / show / status through the real ``syncctl`` binary, on real files.

Covers the README demo end to end, saved plans (exactly-this-plan and every staleness
reason), the confirmation rules, safety refusals, lock conflicts and per-change failures.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from syncctl.model import SourceUser
from tests.cli.binary import SYNCCTL, run_syncctl
from tests.integration.sqlite.tenant import make_tenant, write_fixture

REPO = Path(__file__).resolve().parents[2]


def syncctl(
    *args: str | Path, cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_syncctl(*args, cwd=cwd, stdin=stdin if stdin is not None else "")


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "policies", tmp_path / "policies", ignore=shutil.ignore_patterns(".syncctl")
    )
    return tmp_path


@pytest.fixture
def fixture(tmp_path: Path) -> Path:
    return write_fixture(tmp_path / "gen", make_tenant(20, 3, 40))


def test_demo_end_to_end(demo: Path) -> None:
    first = syncctl("plan", "policies/demo.yaml", "--detailed-exitcode", cwd=demo)
    assert first.returncode == 2, first.stderr
    assert 'user "alice.anders@contoso.com" will be created' in first.stdout
    assert "Plan: 32 to create" in first.stdout

    applied = syncctl("apply", "policies/demo.yaml", "--auto-approve", cwd=demo)
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete: 50 applied, 0 already in place, 0 failed, 0 stale." in applied.stdout
    db = demo / "policies/.syncctl/demo.db"
    assert rows(db, "SELECT count(*) FROM users WHERE managed_by = 'demo'") == [(32 - 3,)]

    again = syncctl("plan", "policies/demo.yaml", "--detailed-exitcode", cwd=demo)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout

    status = syncctl("status", "policies/demo.yaml", cwd=demo)
    assert status.returncode == 0
    assert 'policy "demo": last plan' in status.stdout
    assert "last apply" in status.stdout and "success" in status.stdout


def test_apply_without_a_terminal_refuses_to_prompt(fixture: Path) -> None:
    result = syncctl("apply", fixture.name, cwd=fixture.parent)
    assert result.returncode == 1
    assert "refusing to ask for confirmation without a terminal" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (fixture.parent / "generated.db").exists()


def test_saved_plan_applies_exactly_once(fixture: Path) -> None:
    cwd = fixture.parent
    planned = syncctl("plan", fixture.name, "-o", "plan.json", cwd=cwd)
    assert planned.returncode == 0, planned.stderr
    shown = syncctl("show", "plan.json", cwd=cwd)
    assert shown.returncode == 0
    assert shown.stdout in planned.stdout  # same rendering of the same document

    applied = syncctl("apply", "plan.json", fixture.name, cwd=cwd)
    assert applied.returncode == 0, applied.stderr
    assert rows(cwd / "generated.db", "SELECT count(*) FROM users") == [(20,)]

    replay = syncctl("apply", "plan.json", fixture.name, cwd=cwd)
    assert replay.returncode == 3
    assert replay.stderr.startswith("generated: refused: Saved plan is stale")
    assert rows(cwd / "generated.db", "SELECT count(*) FROM users") == [(20,)]


def test_saved_plan_is_stale_when_the_policy_file_changed(fixture: Path) -> None:
    cwd = fixture.parent
    assert syncctl("plan", fixture.name, "-o", "plan.json", cwd=cwd).returncode == 0
    fixture.write_text(fixture.read_text() + "# reviewed\n")
    result = syncctl("apply", "plan.json", fixture.name, cwd=cwd)
    assert result.returncode == 3
    assert "Saved plan is stale: policy file" in result.stderr
    assert not (cwd / "generated.db").exists()


def test_saved_plan_is_stale_when_a_touched_object_changed_on_the_target(fixture: Path) -> None:
    cwd = fixture.parent
    assert syncctl("apply", fixture.name, "--auto-approve", cwd=cwd).returncode == 0
    tenant = make_tenant(20, 3, 40)
    uid = sorted(tenant.users)[0]
    users = dict(tenant.users)
    users[uid] = SourceUser(uid, {**users[uid].attributes, "department": "Legal"})
    write_fixture(cwd, replace(tenant, users=users))
    planned = syncctl("plan", fixture.name, "-o", "plan.json", cwd=cwd)
    assert "1 to update" in planned.stdout
    address = json.loads((cwd / "plan.json").read_text())["policies"][0]["changes"][0]["address"]
    # An application edits that row (bumping its version) after the plan was reviewed.
    with sqlite3.connect(cwd / "generated.db") as conn:
        conn.execute("UPDATE users SET version = version + 1 WHERE external_id = ?", (uid,))
    result = syncctl("apply", "plan.json", fixture.name, cwd=cwd)
    assert result.returncode == 3
    assert "Saved plan is stale" in result.stderr
    assert address in result.stderr


def test_mass_disable_is_refused_unless_allowed(fixture: Path) -> None:
    cwd = fixture.parent
    assert syncctl("apply", fixture.name, "--auto-approve", cwd=cwd).returncode == 0
    tenant = make_tenant(20, 3, 40)
    survivors = dict(sorted(tenant.users.items())[:10])
    groups = {
        gid: replace(g, members=tuple(m for m in g.members if m in survivors))
        for gid, g in tenant.groups.items()
    }
    write_fixture(cwd, replace(tenant, users=survivors, groups=groups))

    plan = syncctl("plan", fixture.name, cwd=cwd)
    assert plan.returncode == 3, plan.stdout + plan.stderr
    assert "Plan refused by a safety check" in plan.stderr

    refused = syncctl("apply", fixture.name, "--auto-approve", cwd=cwd)
    assert refused.returncode == 3
    assert rows(cwd / "generated.db", "SELECT count(*) FROM users WHERE active = 0") == [(0,)]

    # A refused plan can still be saved for review; applying it needs the same override.
    saved = syncctl("plan", fixture.name, "-o", "plan.json", cwd=cwd)
    assert saved.returncode == 3
    assert json.loads((cwd / "plan.json").read_text())["policies"][0]["refused"]["check"]
    assert syncctl("apply", "plan.json", fixture.name, cwd=cwd).returncode == 3
    assert rows(cwd / "generated.db", "SELECT count(*) FROM users WHERE active = 0") == [(0,)]

    allowed = syncctl("apply", "plan.json", fixture.name, "--allow-mass-delete", cwd=cwd)
    assert allowed.returncode == 0, allowed.stderr
    assert rows(cwd / "generated.db", "SELECT count(*) FROM users WHERE active = 0") == [(10,)]


def test_a_held_lock_exits_3_naming_the_holder(fixture: Path) -> None:
    cwd = fixture.parent
    state_dir = cwd / ".syncctl"
    state_dir.mkdir()
    (state_dir / "generated.state.json.lock").write_text(
        json.dumps(
            {
                "id": "abc",
                "policy": "generated",
                "operation": "apply",
                "holder": "ci@runner-7",
                "host": "runner-7",
                "pid": 4242,
                "created": "2999-01-01T00:00:00Z",
            }
        )
    )
    result = syncctl("apply", fixture.name, "--auto-approve", "--lock-timeout", "0.3s", cwd=cwd)
    assert result.returncode == 3
    assert "locked by ci@runner-7 (pid 4242, apply since" in result.stderr
    assert not (cwd / "generated.db").exists()  # refused before touching the target


def test_failed_changes_are_reported_and_the_rest_applied(fixture: Path) -> None:
    cwd = fixture.parent
    from syncctl.targets.sqlite import open_database

    open_database(cwd / "generated.db").close()  # an application's database, before syncctl
    with sqlite3.connect(cwd / "generated.db") as conn:
        conn.execute(
            "CREATE TRIGGER app_rule BEFORE INSERT ON users WHEN NEW.user_name ="
            " 'user000003@contoso.test' BEGIN SELECT RAISE(ABORT, 'blocked by the app'); END"
        )
    result = syncctl("apply", fixture.name, "--auto-approve", "--format", "json", cwd=cwd)
    assert result.returncode == 1
    # the user and its team membership
    assert result.stderr.startswith("generated: error: 2 of ")
    assert "user/user000003@contoso.test: rejected by the database: blocked by the app" in (
        result.stderr
    )
    document = json.loads(result.stdout)
    (policy,) = document["policies"]
    failed = {o["address"] for o in policy["outcomes"] if o["status"] == "failed"}
    assert "user/user000003@contoso.test" in failed
    assert rows(cwd / "generated.db", "SELECT count(*) FROM users") == [(19,)]
    status = syncctl("status", fixture.name, "--format", "json", cwd=cwd)
    last = json.loads(status.stdout)["policies"][0]["last_apply"]
    assert last["outcome"] == "partial"  # 41 of 43 changes applied
    assert last["errors"] == 2
    assert "changes failed" in last["error"]


def test_show_renders_json_and_markdown(fixture: Path) -> None:
    cwd = fixture.parent
    assert syncctl("plan", fixture.name, "-o", "plan.json", cwd=cwd).returncode == 0
    as_json = syncctl("show", "plan.json", "--format", "json", cwd=cwd)
    assert json.loads(as_json.stdout)["summary"]["create"] == 23
    markdown = syncctl("show", "plan.json", "--format", "markdown", cwd=cwd)
    assert markdown.returncode == 0 and "generated" in markdown.stdout
    broken = cwd / "broken.json"
    broken.write_text("{}")
    bad = syncctl("show", "broken.json", cwd=cwd)
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: broken.json: not a syncctl plan")


def _apply_on_a_terminal(fixture: Path, answer: str) -> subprocess.CompletedProcess[str]:
    """Run apply with a pseudo-terminal as stdin and type ``answer`` at the prompt."""
    import pty

    master, slave = pty.openpty()
    try:
        os.write(master, (answer + "\n").encode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
        return subprocess.run(
            [SYNCCTL, "apply", fixture.name],
            cwd=fixture.parent,
            env={**env, "NO_COLOR": "1"},
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(master)
        os.close(slave)


def test_confirmation_accepts_only_yes(fixture: Path) -> None:
    refused = _apply_on_a_terminal(fixture, "y")
    assert refused.returncode == 1
    assert "Apply these changes? Only 'yes' is accepted:" in refused.stderr
    assert "Apply cancelled" in refused.stderr
    assert not (fixture.parent / "generated.db").exists()
    # Saying no is not a failed run: nothing is recorded for it.
    status = run_syncctl("status", fixture.name, "--format", "json", cwd=fixture.parent)
    assert json.loads(status.stdout)["policies"][0]["last_run"] is None, status.stdout

    accepted = _apply_on_a_terminal(fixture, "yes")
    assert accepted.returncode == 0, accepted.stderr
    assert "Apply complete" in accepted.stdout
    assert rows(fixture.parent / "generated.db", "SELECT count(*) FROM users") == [(20,)]


def test_a_plan_that_cannot_be_saved_is_named_as_the_plan(fixture: Path) -> None:
    cwd = fixture.parent
    (cwd / "blocker").write_text("a file, so blocker/ cannot be a directory")
    result = syncctl("plan", fixture.name, "-o", "blocker/plan.json", cwd=cwd)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: blocker/plan.json: cannot write the plan:")
    assert "state file" not in result.stderr
    assert "Traceback" not in result.stderr
