"""The ``syncctl-validate`` pre-commit hook, installed by pre-commit itself from this repository
(``pre-commit try-repo``: pip installs syncctl into the hook's own environment) and run in a
small policy repository.

The one network access: pip installing this package's dependencies (pip's cache makes it
quick after the first time). The hook itself must not need the network: its policies read an
offline snapshot, and validate reads no secret.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.cli.binary import REPO, run_syncctl
from tests.packaging.source_tree import GIT_ENV, commit_copy, git

PRE_COMMIT = str(Path(sys.executable).with_name("pre-commit"))
HOOKS = REPO / ".pre-commit-hooks.yaml"
DEMO = REPO / "policies" / "demo.yaml"
SNAPSHOT = REPO / "policies" / "snapshots" / "demo.json"


def policy(name: str, **changes: object) -> str:
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document["name"] = name
    document.update(changes)
    return yaml.safe_dump(document, sort_keys=False)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def hook_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return commit_copy(tmp_path_factory.mktemp("syncctl-source"))


def try_repo(
    source: Path, repository: Path, home: Path, *files: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCCTL_", "PRE_COMMIT"))}
    # Without this venv on PATH: the hook must run the syncctl pip put into its environment.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != bin_dir)
    selection = ["--files", *files] if files else ["--all-files"]
    return subprocess.run(
        [PRE_COMMIT, "try-repo", str(source), "syncctl-validate", "--verbose", *selection],
        cwd=repository,
        env={**env, **GIT_ENV, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_hook_definition_is_what_the_docs_promise() -> None:
    (hook,) = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert hook["id"] == "syncctl-validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    assert hook["entry"].split()[:2] == ["syncctl", "validate"]
    assert "--online" not in hook["entry"]  # never the network, never a secret
    selects = re.compile(hook["files"])
    assert selects.search("policies/vault.yaml") and selects.search("infra/policies/a.yml")
    for other in ("policies/snapshots/demo.yaml", "config/app.yaml", "mypolicies/x.yaml"):
        assert not selects.search(other), other
    assert "files:" in (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")


def test_try_repo_passes_valid_policies_and_fails_an_invalid_one(
    hook_source: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "policy-repo"
    for stage in ("staging", "production"):
        # The same policy name in two directories is fine: each directory is its own run.
        write(repository / stage / "policies" / "vault.yaml", policy("vault"))
        write(
            repository / stage / "policies" / "snapshots" / "demo.json",
            SNAPSHOT.read_text(encoding="utf-8"),
        )
    # YAML that is not a policy, which the hook must leave alone.
    write(repository / "config" / "app.yaml", "listen: 8080\n")
    write(repository / ".github" / "workflows" / "ci.yml", "on: push\njobs: {}\n")
    git("init", "-q", "-b", "main", cwd=repository)
    git("add", "-A", cwd=repository)
    home = tmp_path / "pre-commit-home"

    started = time.monotonic()
    passed = try_repo(hook_source, repository, home)
    first = time.monotonic() - started
    output = passed.stdout + passed.stderr
    assert passed.returncode == 0, output
    assert re.search(r"syncctl validate\.+Passed", output), output
    for stage in ("staging", "production"):
        assert f"ok: {stage}/policies/vault.yaml (policy vault)" in output, output
    assert "app.yaml" not in output and "ci.yml" not in output

    write(
        repository / "production" / "policies" / "broken.yaml",
        policy("broken", deletion={"max_delets": 3}),
    )
    git("add", "-A", cwd=repository)
    started = time.monotonic()
    failed = try_repo(hook_source, repository, home, "production/policies/broken.yaml")
    second = time.monotonic() - started
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert re.search(r"syncctl validate\.+Failed", output), output
    (diagnostic,) = [line for line in output.splitlines() if "broken.yaml:" in line]
    assert re.fullmatch(
        r"production/policies/broken\.yaml:\d+:\d+: error: .*max_delets.*", diagnostic
    ), diagnostic
    print(f"pre-commit try-repo: {first:.1f}s (valid), {second:.1f}s (invalid)")


def test_each_directory_is_checked_as_one_run(tmp_path: Path) -> None:
    """What the hook's --each-directory adds to `syncctl validate FILES`."""
    for stage in ("staging", "production"):
        write(tmp_path / stage / "policies" / "vault.yaml", policy("vault"))
        write(
            tmp_path / stage / "policies" / "snapshots" / "demo.json",
            SNAPSHOT.read_text(encoding="utf-8"),
        )
    both = ["staging/policies/vault.yaml", "production/policies/vault.yaml"]
    # Passed together without it, two directories' policies look like one run's.
    clash = run_syncctl("validate", *both, cwd=tmp_path)
    assert clash.returncode == 1 and "already used by" in clash.stderr, clash.stderr
    done = run_syncctl("validate", "--each-directory", *both, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ok: ") == 2
    # A new policy reusing the name of an unchanged one in its directory is caught although
    # only the new file is passed.
    write(tmp_path / "production" / "policies" / "copy.yaml", policy("vault"))
    alone = run_syncctl("validate", "production/policies/copy.yaml", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    caught = run_syncctl(
        "validate", "--each-directory", "production/policies/copy.yaml", cwd=tmp_path
    )
    assert caught.returncode == 1
    assert re.search(
        r"production/policies/vault\.yaml:\d+:\d+: error: .*already used", caught.stderr
    ), caught.stderr
    online = run_syncctl("validate", "--each-directory", "--online", *both, cwd=tmp_path)
    assert online.returncode == 1 and "offline only" in online.stderr
