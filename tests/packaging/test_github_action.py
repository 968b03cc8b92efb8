"""The composite action (``action.yml``) and the example workflow that uses it
(``deploy/github-actions/syncctl.yml``): both valid for GitHub (check-jsonschema's vendored
schemas), and the workflow's jobs run as written, through the action's own steps, on emulated
fresh runners (``tests/packaging/actions_runner.py``).

The policies read the demo's offline snapshot and write a SQLite target; their state is a
local file at one absolute path, standing in for the shared backend every fresh runner sees.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.binary import REPO
from tests.packaging.actions_runner import ACTION, Runner

CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))
WORKFLOW = REPO / "deploy" / "github-actions" / "syncctl.yml"
DEMO = yaml.safe_load((REPO / "policies" / "demo.yaml").read_text(encoding="utf-8"))
SNAPSHOT = REPO / "policies" / "snapshots" / "demo.json"
REPOSITORY = "contoso/identity-policies"


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.github-actions", ACTION), ("vendor.github-workflows", WORKFLOW)],
    ids=["action.yml", "workflow"],
)
def test_github_accepts_the_files(schema: str, path: Path) -> None:
    done = subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_action_keeps_every_input_out_of_shell_code() -> None:
    """An input or event field spliced into a script is a script injection (a branch name
    is attacker-chosen): they reach bash through env: only."""
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"], step.get("id")
            assert step["shell"] == "bash"
    assert set(action["inputs"]) >= {
        "path",
        "command",
        "args",
        "version",
        "pip-spec",
        "python-version",
        "comment",
    }
    assert set(action["outputs"]) >= {"exit-code", "plan-file"}


def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads `on` as true
    return document


def test_workflow_uses_the_action_and_keeps_its_safety_properties() -> None:
    flow = workflow()
    plan, apply = flow["jobs"]["plan"], flow["jobs"]["apply"]
    assert "head.repo.full_name == github.repository" in plan["if"]  # no forks
    assert flow["permissions"]["id-token"] == "write"
    assert apply["concurrency"] == {"group": "syncctl-apply", "cancel-in-progress": False}
    assert apply["environment"] == "production"
    for job in (plan, apply):
        (step,) = [s for s in job["steps"] if s["uses"].startswith("syncctl/syncctl@")]
        assert step["id"] == "syncctl"
        assert re.fullmatch(r"syncctl/syncctl@v\d+\.\d+\.\d+", step["uses"])  # pinned
        assert step["with"]["lock-timeout"] == "10m"
        assert all(s["with"].get("persist-credentials") is False for s in job["steps"][:1])
    assert "trusted" not in plan["steps"][1]["with"]  # the action's own base checkout
    assert "VAULT_SCIM_TOKEN_READONLY" in plan["env"]["VAULT_SCIM_TOKEN"]
    # tests/cli/test_recipes.py checks that docs/gitops.md embeds the workflow verbatim.


class Repository:
    """The policy repository: a protected base branch and the pull request's head."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shared = root / "shared"  # the target and the state every runner reaches
        self.shared.mkdir(parents=True)
        self.base = self.write(root / "base", DEMO)
        self.head = self.write(root / "head", DEMO)

    def write(
        self, checkout: Path, policy: dict[str, Any], target: dict[str, Any] | None = None
    ) -> Path:
        (checkout / "policies" / "snapshots").mkdir(parents=True, exist_ok=True)
        (checkout / "policies" / "snapshots" / "demo.json").write_bytes(SNAPSHOT.read_bytes())
        document = {
            **policy,
            "name": "vault",
            "target": target or {"type": "sqlite", "path": str(self.shared / "vault.db")},
            "state": {"backend": "local", "path": str(self.shared / "vault.state.json")},
        }
        (checkout / "policies" / "vault.yaml").write_text(
            yaml.safe_dump(document, sort_keys=False), encoding="utf-8"
        )
        return checkout

    def runner(self, name: str, event: str, *, head_repository: str = REPOSITORY) -> Runner:
        github = {
            "event_name": event,
            "base_ref": "main" if event == "pull_request" else "",
            "repository": REPOSITORY,
            "event.pull_request.head.repo.full_name": head_repository,
            "token": "ghs_test",
        }
        source = self.head if event == "pull_request" else self.base
        return Runner(self.root / name, source, self.base, github)


def run(runner: Runner, name: str) -> Runner:
    flow = workflow()
    runner.run_job(flow, flow["jobs"][name])
    return runner


def comments(runner: Runner) -> list[dict[str, str]]:
    return [o for a, o in runner.actions if a.startswith("marocchino/sticky-pull-request-comment")]


def test_pull_request_plan_then_apply_on_merge(tmp_path: Path) -> None:
    repo = Repository(tmp_path)

    pull_request = run(repo.runner("pr-1", "pull_request"), "plan")
    assert pull_request.failed is None, pull_request.failed
    (_, base_checkout) = [o for a, o in pull_request.actions if "checkout" in a]
    assert base_checkout["ref"] == "main" and base_checkout["persist-credentials"] == "false"
    # The base branch is what --trusted compares with.
    assert (pull_request.workspace / ".syncctl-trusted" / "policies" / "vault.yaml").is_file()
    (comment,) = comments(pull_request)
    assert comment["header"] == "syncctl"
    plan = Path(comment["path"]).read_text(encoding="utf-8")
    assert "syncctl plan for `vault`" in plan and "to create" in plan
    assert pull_request.summary.read_text(encoding="utf-8") == plan
    assert "exited" not in plan  # 2 (changes) is a successful plan, nothing to explain

    merged = run(repo.runner("apply-1", "push"), "apply")
    assert merged.failed is None, merged.failed
    applied = dict(merged.ran)["syncctl"].stdout
    assert re.search(r"Apply complete: [1-9]\d* applied", applied), applied
    assert not comments(merged)

    # The next schedule, on another fresh runner, has nothing to do; nor has the next PR.
    hourly = run(repo.runner("apply-2", "schedule"), "apply")
    assert hourly.failed is None, hourly.failed
    assert "No changes" in dict(hourly.ran)["syncctl"].stdout
    later = run(repo.runner("pr-2", "pull_request"), "plan")
    assert later.failed is None, later.failed
    (comment,) = comments(later)
    assert "No changes" in Path(comment["path"]).read_text(encoding="utf-8")


def test_a_credential_change_is_refused_and_said_in_the_comment(tmp_path: Path) -> None:
    repo = Repository(tmp_path)
    # The pull request sends the SCIM token to another host.
    scim = {"type": "scim", "url": "https://vault.example.com/scim/v2", "token": {"env": "T"}}
    repo.write(repo.base, DEMO, scim)
    repo.write(repo.head, DEMO, {**scim, "url": "https://collector.example.net/scim/v2"})

    pull_request = run(repo.runner("pr", "pull_request"), "plan")
    assert pull_request.failed is not None
    assert pull_request.failed.returncode == 3, pull_request.failed
    assert "::error::syncctl plan exited 3" in pull_request.failed.output
    (comment,) = comments(pull_request)  # posted before the check fails
    text = Path(comment["path"]).read_text(encoding="utf-8")
    assert "**syncctl plan exited 3.**" in text and "target.url" in text


def test_forks_are_skipped_and_pull_requests_never_apply(tmp_path: Path) -> None:
    repo = Repository(tmp_path)
    fork = repo.runner("fork", "pull_request", head_repository="mallory/identity-policies")
    run(fork, "plan")
    assert fork.failed is None
    assert [label for label, _ in fork.ran] == ["mode"]  # nothing installed, nothing planned
    assert not comments(fork)

    flow = workflow()
    forced = repo.runner("forced", "pull_request")
    steps = [
        {**s, "with": {**s["with"], "command": "apply"}} if "syncctl/" in s["uses"] else s
        for s in flow["jobs"]["plan"]["steps"]
    ]
    forced.run_job(flow, {**flow["jobs"]["plan"], "steps": steps})
    assert forced.failed is not None and forced.failed.label == "mode"
    assert "refusing to apply from a pull request" in forced.failed.output
