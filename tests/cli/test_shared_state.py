"""Two runners (two working directories, as two CI jobs or two pods) share one state backend
through the real binary: they see the same state, and never apply at once."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli.binary import SYNCCTL, copy_demo, run_syncctl
from tests.contract.state_child import Holder, hold_lock
from tests.contract.state_store import StateStore


@pytest.fixture(params=["postgres", "azure_blob"])
def store(request: pytest.FixtureRequest) -> StateStore:
    found: StateStore = request.getfixturevalue(f"{request.param}_state_store")
    return found


def runner(root: Path, store: StateStore, directory: Path) -> Path:
    """A checkout of the demo policy whose state is in ``store`` and whose SQLite target is
    the one both runners write (as a real target would be)."""
    policy = copy_demo(root)
    document = yaml.safe_load(policy.read_text(encoding="utf-8"))
    document["state"] = store.section
    document["target"]["path"] = str(directory)
    policy.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return policy


@pytest.fixture
def runners(tmp_path: Path, store: StateStore) -> tuple[Path, Path]:
    directory = tmp_path / "target" / "directory.db"
    directory.parent.mkdir()
    return runner(tmp_path / "a", store, directory), runner(tmp_path / "b", store, directory)


def run(store: StateStore, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_syncctl(*args, cwd=cwd, **store.env)


@pytest.fixture
def holder(store: StateStore, runners: tuple[Path, Path]) -> Iterator[Holder]:
    """A third runner holding the lock until released."""
    held = hold_lock(runners[0], store.env)
    try:
        yield held
    finally:
        held.release()


def test_two_runners_see_one_state(store: StateStore, runners: tuple[Path, Path]) -> None:
    first, second = runners
    applied = run(store, "apply", "--auto-approve", first, cwd=first.parent)
    assert applied.returncode == 0, applied.stderr
    planned = run(store, "plan", "--detailed-exitcode", second, cwd=second.parent)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "No changes" in planned.stdout
    assert not (second.parent / ".syncctl").exists() and not (first.parent / ".syncctl").exists()

    shown = [run(store, "state", "show", p, cwd=p.parent) for p in runners]
    assert shown[0].returncode == 0, shown[0].stderr
    document = json.loads(shown[0].stdout)
    assert document["policy"] == "demo" and document["managed"]
    assert document["last_apply"]["outcome"] == "success"
    assert document["last_run"]["operation"] == "plan"  # the second runner's plan

    listed = run(store, "state", "list", "--format", "json", second, cwd=second.parent)
    row = json.loads(listed.stdout)["policies"][0]
    assert row["backend"] == store.kind and row["managed"] == len(document["managed"])
    status = run(store, "status", second, cwd=second.parent)
    assert "last apply" in status.stdout and "success" in status.stdout


def test_a_second_runner_is_refused_at_once_naming_the_holder(
    store: StateStore, runners: tuple[Path, Path], holder: Holder
) -> None:
    second = runners[1]
    refused = run(store, "apply", "--auto-approve", second, cwd=second.parent)
    assert refused.returncode == 3
    assert holder.lock_id in refused.stderr and "locked by" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_runner_with_a_lock_timeout_says_it_waits_then_runs(
    store: StateStore, runners: tuple[Path, Path], holder: Holder
) -> None:
    second = runners[1]
    waiting = subprocess.Popen(
        [SYNCCTL, "apply", "--auto-approve", "--lock-timeout", "120", str(second)],
        cwd=second.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **store.env},
    )
    assert waiting.stderr is not None
    said = waiting.stderr.readline()  # printed before it waits, also without a terminal
    assert said.startswith("demo: waiting up to 120s for the lock:"), said
    assert holder.lock_id in said
    holder.release()
    out, err = waiting.communicate(timeout=180)
    assert waiting.returncode == 0, said + err
    assert "Apply complete" in out


def test_two_simultaneous_applies_never_both_run(
    store: StateStore, runners: tuple[Path, Path]
) -> None:
    started = [
        subprocess.Popen(
            [SYNCCTL, "apply", "--auto-approve", str(policy)],
            cwd=policy.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1", **store.env},
        )
        for policy in runners
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in started]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 3]), results
    for code, _, err in results:
        if code == 3:
            assert "locked by" in err
    # Whichever order they ran in, the target converged once: nothing doubled, nothing left.
    again = run(store, "plan", "--detailed-exitcode", runners[0], cwd=runners[0].parent)
    assert again.returncode == 0, again.stdout + again.stderr


def test_an_unreachable_backend_is_one_line_naming_policy_and_backend(tmp_path: Path) -> None:
    policy = copy_demo(tmp_path)
    document = yaml.safe_load(policy.read_text(encoding="utf-8"))
    document["state"] = {"backend": "postgres", "dsn": {"env": "STATE_DSN"}}
    policy.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    dsn = "host=127.0.0.1 port=9 dbname=syncctl user=syncctl password=hunter2-secret"
    result = run_syncctl("plan", policy, cwd=tmp_path, STATE_DSN=dsn)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("demo: error:") and "postgres" in line
    assert "hunter2-secret" not in result.stderr + result.stdout
