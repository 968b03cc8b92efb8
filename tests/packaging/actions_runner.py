"""Enough of a GitHub-hosted runner to run a workflow job and this repository's composite
action (``action.yml``) as written.

Every ``run:`` step goes through bash as Actions runs it (``bash --noprofile --norc -eo
pipefail``) with ``GITHUB_OUTPUT``, ``GITHUB_PATH``, ``GITHUB_STEP_SUMMARY`` and
``RUNNER_TEMP``; ``${{ }}`` expressions are evaluated for the contexts the files use (inputs,
github, runner, secrets, steps) and an expression this runner does not know fails the test
rather than being guessed. ``actions/checkout`` becomes a copy (the base branch when its
``ref`` is ``github.base_ref``), setup-python a no-op (the test's Python runs syncctl), the
action's pip install is skipped (the syncctl under test is first on PATH), and any other
action (the pull-request comment) is recorded with its inputs, not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cli.binary import REPO, SYNCCTL

ACTION = REPO / "action.yml"
# How a workflow names this repository's action: a release of it, or the checkout itself.
OWN_ACTION = re.compile(r"^(syncctl/syncctl@.+|\./?)$")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
COMPARISON = re.compile(r"\s*([\w.-]+)\s*(==|!=)\s*'([^']*)'\s*")
SKIPPED_ACTION_STEPS = {"install"}  # pip install syncctl: the one under test is on PATH


def scalar(value: object) -> str:
    """A YAML value as Actions hands it to a step: booleans as `true` / `false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class StepFailed:
    label: str
    returncode: int
    output: str


@dataclass
class Runner:
    workspace: Path
    repository: Path  # what actions/checkout checks out: the pushed commit or pull request
    base: Path  # the protected base branch
    github: Mapping[str, str]  # the github context, flattened: "event_name", "base_ref", ...
    secrets: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)  # the runner's own environment
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # job step id -> outputs
    ran: list[tuple[str, subprocess.CompletedProcess[str]]] = field(default_factory=list)
    actions: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # recorded uses:
    failed: StepFailed | None = None
    path_entries: list[str] = field(default_factory=list)  # from GITHUB_PATH

    def __post_init__(self) -> None:
        self.workspace.mkdir(parents=True)
        self.temp.mkdir()

    @property
    def temp(self) -> Path:
        return self.workspace.parent / f"{self.workspace.name}-runner-temp"

    @property
    def summary(self) -> Path:
        return self.temp / "step-summary.md"

    # --- expressions ------------------------------------------------------------------

    def value(self, name: str, scope: Mapping[str, Any]) -> str:
        if name.startswith("github."):
            key = name.removeprefix("github.")
            if key not in self.github:
                raise AssertionError(f"the test runner has no ${{{{ {name} }}}}")
            return self.github[key]
        if name == "runner.temp":
            return str(self.temp)
        if name.startswith("secrets."):
            return self.secrets.get(name.removeprefix("secrets."), "")
        if name.startswith("inputs."):
            inputs: Mapping[str, str] = scope["inputs"]
            return inputs[name.removeprefix("inputs.")]
        step = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", name)
        if step:
            steps: Mapping[str, Mapping[str, str]] = scope["steps"]
            return steps.get(step.group(1), {}).get(step.group(2), "")
        raise AssertionError(f"the test runner does not evaluate ${{{{ {name} }}}}")

    def expand(self, text: str, scope: Mapping[str, Any]) -> str:
        return EXPRESSION.sub(lambda m: self.value(m.group(1), scope), text)

    def condition(self, text: str, scope: Mapping[str, Any]) -> bool:
        """``if:`` as the files write it: comparisons with a quoted literal, joined by &&."""
        result = True
        for part in text.split("&&"):
            match = COMPARISON.fullmatch(part)
            assert match, f"the test runner does not evaluate `if: {text}`"
            equal = self.value(match.group(1), scope) == match.group(3)
            result = result and equal == (match.group(2) == "==")
        return result

    # --- jobs and steps ---------------------------------------------------------------

    def run_job(self, workflow: Mapping[str, Any], job: Mapping[str, Any]) -> None:
        """The job's steps in order; the first failing step ends the job (``failed``)."""
        env = {**workflow.get("env", {}), **job.get("env", {})}
        scope: dict[str, Any] = {"inputs": {}, "steps": self.outputs}
        self.steps(job["steps"], scope, {k: scalar(v) for k, v in env.items()})

    def steps(
        self, steps: list[dict[str, Any]], scope: dict[str, Any], env: dict[str, str]
    ) -> None:
        for index, step in enumerate(steps):
            if self.failed is not None:
                return
            if "if" in step and not self.condition(str(step["if"]), scope):
                continue
            if "uses" in step:
                self.uses(step, scope, env)
            elif step.get("id") in SKIPPED_ACTION_STEPS and scope.get("composite"):
                continue
            else:
                self.run(step, index, scope, env)

    def run(
        self, step: Mapping[str, Any], index: int, scope: dict[str, Any], env: Mapping[str, str]
    ) -> None:
        label = step.get("id") or step["run"].splitlines()[0]
        merged = {**env, **step.get("env", {})}
        step_env = {k: self.expand(scalar(v), scope) for k, v in merged.items()}
        output = self.temp / f"output-{len(self.ran)}-{index}"
        output.write_text("", encoding="utf-8")
        github_path = self.temp / "github-path"
        github_path.touch()
        base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
        path = os.pathsep.join([*self.path_entries, str(Path(SYNCCTL).parent), base["PATH"]])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=self.workspace,
            env={
                **base,
                "PATH": path,
                "NO_COLOR": "1",
                "GITHUB_OUTPUT": str(output),
                "GITHUB_PATH": str(github_path),
                "GITHUB_STEP_SUMMARY": str(self.summary),
                "GITHUB_WORKSPACE": str(self.workspace),
                "RUNNER_TEMP": str(self.temp),
                **self.env,
                **step_env,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.ran.append((label, done))
        self.path_entries = [*github_path.read_text("utf-8").splitlines()[::-1]]
        if "id" in step:
            lines = output.read_text(encoding="utf-8").splitlines()
            scope["steps"][step["id"]] = dict(line.split("=", 1) for line in lines if "=" in line)
        if done.returncode != 0:
            self.failed = StepFailed(label, done.returncode, done.stdout + done.stderr)

    def uses(self, step: Mapping[str, Any], scope: dict[str, Any], env: dict[str, str]) -> None:
        action = str(step["uses"])
        options = {k: self.expand(scalar(v), scope) for k, v in step.get("with", {}).items()}
        if OWN_ACTION.match(action):
            outputs = self.composite(options, env)
            if "id" in step:
                scope["steps"][step["id"]] = outputs
            return
        self.actions.append((action, options))
        if action.startswith("actions/checkout@"):
            source = self.base if options.get("ref") == self.github["base_ref"] else self.repository
            shutil.copytree(source, self.workspace / options.get("path", "."), dirs_exist_ok=True)

    def composite(self, options: Mapping[str, str], env: dict[str, str]) -> dict[str, str]:
        action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
        assert action["runs"]["using"] == "composite"
        unknown = set(options) - set(action["inputs"])
        assert not unknown, f"the workflow passes inputs action.yml does not declare: {unknown}"
        outer: dict[str, Any] = {"inputs": {}, "steps": {}}
        inputs = {
            name: options.get(name, self.expand(str(spec.get("default", "")), outer))
            for name, spec in action["inputs"].items()
        }
        scope: dict[str, Any] = {"inputs": inputs, "steps": {}, "composite": True}
        self.steps(action["runs"]["steps"], scope, env)
        return {
            name: self.expand(str(spec["value"]), scope)
            for name, spec in action.get("outputs", {}).items()
        }
