"""Honest outcomes and isolated policies, through the real binary: object errors are not
"No changes", one policy's failure does not stop the others, the exit code is the worst
per-policy outcome, status records partial / failed, and saved plans find their policies."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.cli.binary import run_syncctl
from tests.integration.sqlite.tenant import make_tenant, write_fixture


def syncctl(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_syncctl(*args, cwd=cwd, **env)


def users(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])


def status_of(policy: Path, cwd: Path) -> dict[str, object]:
    result = syncctl("status", policy, "--format", "json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["policies"]
    return dict(row)


def with_mapping(policy: Path, mapping: str) -> Path:
    """Add a user mapping block (the default mappings plus ``mapping``) to a fixture policy."""
    policy.write_text(
        policy.read_text()
        + "mappings:\n  user:\n    attributes:\n"
        + '      userName: "[userPrincipalName]"\n'
        + '      displayName: "[displayName]"\n'
        + f"      {mapping}\n",
        encoding="utf-8",
    )
    return policy


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_policy(directory: Path, name: str) -> Path:
    """A policy whose tenant cannot be reached (sign-in on a closed loopback port)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = closed_port()
    path = directory / f"{name}.yaml"
    path.write_text(
        f"""\
version: 1
name: {name}
tenant:
  id: contoso.onmicrosoft.com
  client_id: 3f0c4d2e-8b1a-4c55-9d7e-1a2b3c4d5e6f
  credential:
    client_secret: {{env: UNREACHABLE_SECRET}}
  endpoints:
    authority: https://127.0.0.1:{port}
    graph: https://127.0.0.1:{port}
source:
  scope_groups: [App Users]
target:
  type: sqlite
  path: {name}.db
""",
        encoding="utf-8",
    )
    return path


# -- object errors are not success ---------------------------------------------------------


@pytest.fixture
def erring(tmp_path: Path) -> Path:
    """12 users; the 8 with a jobTitle ("Engineer") fail CDate, the 4 without map fine."""
    policy = write_fixture(tmp_path, make_tenant(12, 1, 6))
    return with_mapping(policy, 'title: "CDate([jobTitle])"')


@pytest.mark.parametrize("detailed", [False, True])
def test_a_plan_with_object_errors_exits_1_and_says_so(erring: Path, detailed: bool) -> None:
    flags = ["--detailed-exitcode"] if detailed else []
    result = syncctl("plan", erring.name, *flags, cwd=erring.parent)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No changes" not in result.stdout
    assert result.stderr.startswith("generated: error: 8 objects could not be planned")
    status = status_of(erring, erring.parent)
    last = status["last_run"]
    assert isinstance(last, dict)
    assert last["outcome"] == "partial" and last["errors"] == 8


def test_apply_applies_the_valid_changes_then_exits_1(erring: Path) -> None:
    cwd = erring.parent
    result = syncctl("apply", erring.name, "--auto-approve", cwd=cwd)
    assert result.returncode == 1, result.stdout + result.stderr
    assert users(cwd / "generated.db") == 4  # the valid ones were applied
    assert "generated: error: 8 objects could not be planned" in result.stderr
    last = status_of(erring, cwd)["last_apply"]
    assert isinstance(last, dict)
    assert last["outcome"] == "partial" and last["errors"] == 8

    again = syncctl("apply", erring.name, "--auto-approve", cwd=cwd)
    assert again.returncode == 1  # nothing left to apply, but 8 people are still not synced
    assert "Nothing to apply." in again.stdout
    last = status_of(erring, cwd)["last_apply"]
    assert isinstance(last, dict)
    assert last["outcome"] == "failed" and last["errors"] == 8


# -- each policy is its own unit of work --------------------------------------------------


@pytest.fixture
def three(tmp_path: Path) -> Path:
    """policies/ with two healthy snapshot policies and one unreachable tenant."""
    directory = tmp_path / "policies"
    for name, size in (("alpha", 5), ("gamma", 7)):
        policy = write_fixture(directory, make_tenant(size, 1, 3), name=name)
        (directory / "tenant.json").rename(directory / f"{name}.json")
        policy.write_text(policy.read_text().replace("tenant.json", f"{name}.json"))
    unreachable_policy(directory, "beta")
    return directory


def test_one_unreachable_tenant_does_not_stop_the_others(three: Path) -> None:
    cwd = three.parent
    result = syncctl(
        "apply", "policies", "--auto-approve", "--timeout", "60s", cwd=cwd, UNREACHABLE_SECRET="s3"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert users(three / "alpha.db") == 5
    assert users(three / "gamma.db") == 7
    assert not (three / "beta.db").exists()
    errors = [line for line in result.stderr.splitlines() if line]
    assert errors and all(line.startswith("beta: error: ") for line in errors), errors
    summary = result.stdout[result.stdout.index("Summary:") :].splitlines()
    assert summary[1].split()[:2] == ["policy", "outcome"]
    outcomes = {line.split()[0]: line.split()[1] for line in summary[2:]}
    assert outcomes == {"alpha": "success", "beta": "failed", "gamma": "success"}

    status = syncctl("status", "policies", "--format", "json", cwd=cwd)
    last = {p["policy"]: p["last_apply"] for p in json.loads(status.stdout)["policies"]}
    assert last["alpha"]["outcome"] == "success"
    assert last["gamma"]["outcome"] == "success"
    assert last["beta"]["outcome"] == "failed"
    assert "sign-in" in last["beta"]["error"] or "reach" in last["beta"]["error"]


def test_a_held_lock_refuses_that_policy_only(three: Path) -> None:
    cwd = three.parent
    (three / "beta.yaml").unlink()
    lock = three / ".syncctl" / "alpha.state.json.lock"
    lock.parent.mkdir()
    lock.write_text(
        json.dumps(
            {
                "id": "abc",
                "policy": "alpha",
                "operation": "apply",
                "holder": "ci@runner-7",
                "host": "runner-7",
                "pid": 4242,
                "created": "2999-01-01T00:00:00Z",
            }
        )
    )
    result = syncctl("apply", "policies", "--auto-approve", cwd=cwd)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.startswith("alpha: refused: ")
    assert "locked by ci@runner-7" in result.stderr
    assert users(three / "gamma.db") == 7
    assert not (three / "alpha.db").exists()


def test_plan_json_over_several_policies_holds_the_healthy_ones(three: Path) -> None:
    result = syncctl(
        "plan", "policies", "--format", "json", cwd=three.parent, UNREACHABLE_SECRET="s3"
    )
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert [p["name"] for p in document["policies"]] == ["alpha", "gamma"]
    assert result.stderr.startswith("beta: error: ")


# -- saved plans know where their policies are -----------------------------------------------


def test_a_saved_plan_applies_from_any_directory(tmp_path: Path) -> None:
    policy = write_fixture(tmp_path / "repo" / "policies", make_tenant(6, 1, 3))
    repo = tmp_path / "repo"
    planned = syncctl("plan", "policies", "-o", "out/plan.json", cwd=repo)
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.splitlines()
    assert lines[-1] == "syncctl apply out/plan.json"  # the hint, copy-pasteable as it is

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    applied = syncctl("apply", repo / "out" / "plan.json", cwd=elsewhere)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert users(policy.parent / "generated.db") == 6


def test_a_refused_saved_plan_says_how_to_proceed(tmp_path: Path) -> None:
    cwd = tmp_path
    policy = write_fixture(cwd, make_tenant(20, 1, 3))
    assert syncctl("apply", policy.name, "--auto-approve", cwd=cwd).returncode == 0
    write_fixture(cwd, make_tenant(8, 1, 3))  # 12 of 20 leave: over max_disables 10%
    result = syncctl("plan", policy.name, "-o", "plan.json", cwd=cwd)
    assert result.returncode == 3
    assert "Apply exactly this plan" not in result.stdout
    assert result.stdout.splitlines()[-1] == "syncctl apply plan.json --allow-mass-delete"


# -- a saved plan cannot switch a safety check off ---------------------------------------------


def _refused_plan(cwd: Path) -> tuple[Path, dict[str, object]]:
    policy = write_fixture(cwd, make_tenant(20, 1, 3))
    assert syncctl("apply", policy.name, "--auto-approve", cwd=cwd).returncode == 0
    write_fixture(cwd, make_tenant(8, 1, 3))
    assert syncctl("plan", policy.name, "-o", "plan.json", cwd=cwd).returncode == 3
    document = json.loads((cwd / "plan.json").read_text())
    assert document["policies"][0]["refused"]["check"] == "max_disables"
    return policy, document


def _active(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM users WHERE active = 1").fetchone()[0])


def test_an_edited_plan_file_is_refused_as_modified(tmp_path: Path) -> None:
    _, document = _refused_plan(tmp_path)
    document["policies"][0]["refused"] = None  # type: ignore[index]
    (tmp_path / "plan.json").write_text(json.dumps(document))
    result = syncctl("apply", "plan.json", cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "modified" in result.stderr
    assert result.stderr == (
        "Error: plan.json: the plan file was modified after it was made (digest mismatch); "
        "run plan again\n"
    )
    assert _active(tmp_path / "generated.db") == 20


def test_a_re_digested_plan_is_still_refused_by_the_live_check(tmp_path: Path) -> None:
    """The digest is no signature: whoever edits the file can recompute it. The safety
    checks therefore run again on exactly the changes about to be applied."""
    from syncctl.plan.planfile import dumps_dict

    _, document = _refused_plan(tmp_path)
    document["policies"][0]["refused"] = None  # type: ignore[index]
    document.pop("digest")
    (tmp_path / "plan.json").write_text(dumps_dict(document))
    result = syncctl("apply", "plan.json", cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Plan refused by a safety check" in result.stderr
    assert _active(tmp_path / "generated.db") == 20

    allowed = syncctl("apply", "plan.json", "--allow-mass-delete", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert _active(tmp_path / "generated.db") == 8


def test_a_saved_plan_of_several_policies_applies_each_on_its_own(three: Path) -> None:
    cwd = three.parent
    (three / "beta.yaml").unlink()
    assert syncctl("plan", "policies", "-o", "plan.json", cwd=cwd).returncode == 0
    (three / "alpha.yaml").write_text((three / "alpha.yaml").read_text() + "# edited\n")
    result = syncctl("apply", "plan.json", cwd=cwd)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.startswith("alpha: refused: Saved plan is stale: policy file")
    assert users(three / "gamma.db") == 7  # the other policy of the plan was applied
    assert not (three / "alpha.db").exists()


def test_timeout_bounds_a_run_whose_tenant_never_answers(tmp_path: Path) -> None:
    """A sign-in endpoint that accepts the connection and never answers: --timeout ends the
    run with a clear error instead of waiting out every retry."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        policy = unreachable_policy(tmp_path, "silent")
        text = policy.read_text()
        for key in ("authority", "graph"):
            start = text.index(f"    {key}: ")
            end = text.index("\n", start)
            text = text[:start] + f"    {key}: https://127.0.0.1:{port}" + text[end:]
        policy.write_text(text)
        result = syncctl(
            "plan", policy.name, "--timeout", "2s", cwd=tmp_path, UNREACHABLE_SECRET="s3"
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("silent: error: ")
    assert "--timeout 2s" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
