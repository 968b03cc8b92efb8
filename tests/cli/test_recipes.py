"""The deployment recipes, run as written: the Kubernetes CronJob of ``deploy/kubernetes/``
and the GitHub Actions workflow of ``deploy/github-actions/syncctl.yml`` (through the
steps of the syncctl action, ``action.yml``), through the real binary, against a real
PostgreSQL and a real Azurite.

What the tests cannot reach is swapped, and only that: the tenant becomes the demo's offline
snapshot (no Entra from a test) and the target the demo's SQLite database (no production SCIM
server). Everything that concerns the shared state (the ``state:`` section, the command line,
the environment variable names) is taken from the recipe files verbatim, so a recipe that
drifts from what syncctl accepts fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.cli.binary import REPO, SYNCCTL, run_syncctl
from tests.contract.state_child import hold_lock
from tests.packaging.actions_runner import Runner
from tests.servers.azurite import STATE_ENV, Azurite
from tests.servers.postgres import PostgresServer

KUBERNETES = REPO / "deploy" / "kubernetes"
WORKFLOW = REPO / "deploy" / "github-actions" / "syncctl.yml"
GITOPS_DOC = REPO / "docs" / "gitops.md"
EXAMPLES = REPO / "examples"
AZURE_BLOB_EXAMPLE = EXAMPLES / "gitops-azure-blob.yaml"
DEMO = yaml.safe_load((REPO / "policies" / "demo.yaml").read_text(encoding="utf-8"))
DEMO_SNAPSHOT = REPO / "policies" / "snapshots" / "demo.json"
WAIT_SECONDS = 60.0


# --- the Kubernetes manifests -------------------------------------------------------------


def manifests(directory: Path = KUBERNETES) -> list[dict[str, Any]]:
    """Every Kubernetes object of ``directory/*.yaml`` (the kustomization file is not one)."""
    objects: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert isinstance(document, dict), f"{path}: not a mapping"
            if document.get("kind") not in ("Kustomization", "Component"):
                objects.append(document)
    return objects


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@dataclass(frozen=True)
class CronJobRecipe:
    cronjob: dict[str, Any]
    container: dict[str, Any]
    command: list[str]  # command + args, as the kubelet runs them
    policies_mount: str  # where the ConfigMap is mounted, as named in the command
    policy_files: dict[str, str]  # the ConfigMap's data: file name -> policy text
    env_names: list[str]
    secret: dict[str, Any]


def cronjob_recipe() -> CronJobRecipe:
    objects = manifests()
    cronjob = one(objects, "CronJob")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]]]
    configmap_name = volumes[mount["name"]]["configMap"]["name"]
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert configmap["metadata"]["name"] == configmap_name
    return CronJobRecipe(
        cronjob=cronjob,
        container=container,
        command=[*container.get("command", []), *container.get("args", [])],
        policies_mount=mount["mountPath"],
        policy_files=dict(configmap["data"]),
        env_names=[e["name"] for e in container["env"]],
        secret=one(objects, "Secret"),
    )


def duration_seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", text)
    assert match, f"not a duration syncctl's --timeout takes: {text}"
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def offline(policy: dict[str, Any], *, database: Path) -> dict[str, Any]:
    """``policy`` with its tenant swapped for the demo's offline snapshot and its target for a
    SQLite database: a test reaches neither Entra nor a production SCIM server. Every other
    section (``state:`` above all) stays exactly as the recipe wrote it."""
    tenant = {**DEMO["tenant"], "snapshot": str(DEMO_SNAPSHOT)}
    return {**policy, "tenant": tenant, "target": {"type": "sqlite", "path": str(database)}}


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_cronjob_manifest_is_safe_to_schedule() -> None:
    recipe = cronjob_recipe()
    spec = recipe.cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 3600
    assert job["backoffLimit"] <= 1
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    context = recipe.container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(recipe.container["resources"]["requests"])
    image = recipe.container["image"]
    assert image.startswith("ghcr.io/OWNER/syncctl:") and "REPLACE_ME" in image
    # The kubelet's deadline must outlast syncctl's own, plus the SIGTERM grace in which it
    # finishes its write and releases the lock: otherwise Kubernetes kills it first.
    command = recipe.command
    assert command[:3] == ["syncctl", "apply", "--auto-approve"]
    timeout = duration_seconds(command[command.index("--timeout") + 1])
    assert job["activeDeadlineSeconds"] > timeout + pod["terminationGracePeriodSeconds"]
    # The Secret is a template: every value a placeholder, each one the container reads.
    values = recipe.secret["stringData"]
    assert all("REPLACE_ME" in value for value in values.values())
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in recipe.container["env"]
        if "valueFrom" in e
    }
    assert {r["key"] for r in refs.values()} == set(values)
    assert {r["name"] for r in refs.values()} == {recipe.secret["metadata"]["name"]}


@dataclass
class Pod:
    """One CronJob pod: its own ConfigMap mount and HOME, nothing else shared."""

    root: Path
    recipe: CronJobRecipe
    policies: dict[str, Any]
    env: dict[str, str]

    def __post_init__(self) -> None:
        self.mount.mkdir(parents=True)
        self.home.mkdir()
        for name, policy in self.policies.items():
            (self.mount / name).write_text(yaml.safe_dump(policy, sort_keys=False), "utf-8")

    @property
    def mount(self) -> Path:
        return self.root / "policies"

    @property
    def home(self) -> Path:
        return self.root / "tmp"  # HOME=/tmp: the only writable directory of the pod

    @property
    def policy_file(self) -> Path:
        (name,) = self.policies
        return self.mount / name

    def command(self, *extra: str) -> list[str]:
        """The container's command, its ConfigMap mount path pointing at this pod's copy."""
        assert self.recipe.command[0] == "syncctl"
        args = [
            str(self.mount) if a == self.recipe.policies_mount else a for a in self.recipe.command
        ]
        assert str(self.mount) in args, "the command does not name the ConfigMap mount"
        return [*args[1:], *extra]

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return run_syncctl(*args, cwd=self.root, HOME=str(self.home), **self.env)

    def cronjob(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(*self.command(*extra))


def test_kubernetes_cronjob_recipe_shares_state_and_lock_through_postgres(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str
) -> None:
    recipe = cronjob_recipe()
    (name, text) = next(iter(recipe.policy_files.items()))
    policy = yaml.safe_load(text)
    state = policy["state"]
    assert state["backend"] == "postgres"
    dsn_env = state["dsn"]["env"]
    assert dsn_env in recipe.env_names, "the policy reads a DSN variable the pod does not set"
    dsn = postgres_server.dsn(postgres_database)
    # The SQLite file stands in for the one SCIM server every pod writes to.
    shared = offline(policy, database=tmp_path / "target" / "vault.db")
    (tmp_path / "target").mkdir()
    assert shared["state"] == state
    pods = [Pod(tmp_path / p, recipe, {name: shared}, {dsn_env: dsn}) for p in ("a", "b", "c")]
    mounts = {pod.root.name: tree(pod.mount) for pod in pods}

    first = pods[0].cronjob()
    assert first.returncode == 0, first.stderr
    assert re.search(
        r"Apply complete: [1-9]\d* applied, 0 already in place, 0 failed", first.stdout
    )

    # A second pod starts without files and sees what the first did.
    second = pods[1].run("plan", "--detailed-exitcode", pods[1].mount)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "No changes" in second.stdout
    shown = [pod.run("state", "show", pod.policy_file) for pod in pods[:2]]
    assert [s.returncode for s in shown] == [0, 0], [s.stderr for s in shown]
    assert shown[0].stdout == shown[1].stdout
    document = json.loads(shown[0].stdout)
    assert document["last_apply"]["outcome"] == "success"
    assert document["last_run"]["operation"] == "plan"  # pod b's plan, recorded in the shared state
    assert len(document["managed"]) > 0

    # A third process holds the lock, as a run in another pod would.
    holder = hold_lock(pods[2].policy_file, {dsn_env: dsn})
    lock_id = holder.lock_id
    waiter: subprocess.Popen[str] | None = None
    try:
        refused = pods[1].cronjob()
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "is locked by" in refused.stderr and lock_id in refused.stderr
        assert "Apply complete" not in refused.stdout

        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT backend_pid FROM syncctl_locks WHERE lock_id = %s", (lock_id,)
            ).fetchone()
        assert row is not None
        base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
        waiter = subprocess.Popen(
            [SYNCCTL, *pods[1].command("--lock-timeout", "60")],
            cwd=pods[1].root,
            env={**base, "NO_COLOR": "1", "HOME": str(pods[1].home), dsn_env: dsn},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The waiter says who it waits for before it waits (a pod log must not look hung):
        # release only once it has said so, so the test shows a wait, not a free lock.
        assert waiter.stderr is not None
        said = waiter.stderr.readline()
        assert said.startswith("vault: waiting up to 60s for the lock:"), said
        assert lock_id in said and int(str(row[0])) > 0
        holder.release()
        assert holder.process.returncode == 0
        out, err = waiter.communicate(timeout=WAIT_SECONDS)
        assert waiter.returncode == 0, out + err
        assert "locked" not in err
    finally:
        holder.kill()
        if waiter is not None and waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    after = json.loads(pods[1].run("state", "show", pods[1].policy_file).stdout)
    assert after["last_run"]["operation"] == "apply"
    assert after["managed"] == document["managed"]

    # The ConfigMap mount is read-only in the pod: nothing may be written beside the policy.
    assert {pod.root.name: tree(pod.mount) for pod in pods} == mounts


# --- the GitHub Actions workflow ----------------------------------------------------------


def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    # YAML 1.1 reads the key `on` as true.
    document["on"] = document.pop(True, document.get("on"))
    return document


def test_the_doc_embeds_the_workflow_verbatim() -> None:
    doc = GITOPS_DOC.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- deploy/github-actions/syncctl\.yml -->\n```yaml\n(.*?)```\n"
        r"<!-- end deploy/github-actions/syncctl\.yml -->",
        doc,
        re.DOTALL,
    )
    assert match, "docs/gitops.md has no marked copy of deploy/github-actions/syncctl.yml"
    assert match.group(1) == WORKFLOW.read_text(encoding="utf-8")


def test_workflow_triggers_permissions_and_concurrency() -> None:
    flow = workflow()
    assert set(flow["on"]) >= {"pull_request", "push", "schedule"}
    assert flow["on"]["push"]["branches"] == ["main"]
    assert flow["on"]["schedule"][0]["cron"].split()[1:] == ["*", "*", "*", "*"]  # hourly
    assert flow["permissions"]["id-token"] == "write"
    assert flow["permissions"]["pull-requests"] == "write"
    plan, apply = flow["jobs"]["plan"], flow["jobs"]["apply"]
    assert "pull_request" in plan["if"] and "!= 'pull_request'" in apply["if"]
    # One group for every apply, whatever triggered it, and a waiting apply is not cancelled.
    assert apply["concurrency"] == {"group": "syncctl-apply", "cancel-in-progress": False}
    assert "${{" in plan["concurrency"]["group"]  # per pull request, never the apply group
    example = yaml.safe_load(AZURE_BLOB_EXAMPLE.read_text(encoding="utf-8"))
    assert example["tenant"]["credential"] == {"federated_token": {"github_actions": {}}}
    assert example["state"]["backend"] == "azure_blob"
    assert example["state"]["account_url"].startswith("https://")
    assert "connection_string" not in example["state"]


def test_github_actions_recipe_shares_state_through_azure_blob(
    tmp_path: Path, azurite: Azurite
) -> None:
    flow = workflow()
    plan_job, apply_job = flow["jobs"]["plan"], flow["jobs"]["apply"]
    example = yaml.safe_load(AZURE_BLOB_EXAMPLE.read_text(encoding="utf-8"))
    # The real recipe signs in to storage with the job's OIDC token through Entra, which a test
    # cannot reach, and the azurite fixture serves no OAuth: so account_url (and only it)
    # becomes a connection string to Azurite. Container, backend and the rest stay verbatim.
    state = {k: v for k, v in example["state"].items() if k != "account_url"}
    state["connection_string"] = {"env": STATE_ENV}
    policy = {**offline(example, database=tmp_path / "target" / "vault.db"), "state": state}
    (tmp_path / "target").mkdir()
    repository = tmp_path / "repository"
    (repository / "policies").mkdir(parents=True)
    policy_file = repository / "policies" / f"{example['name']}.yaml"
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    secrets = {"VAULT_SCIM_TOKEN": "unused-by-sqlite", "VAULT_SCIM_TOKEN_READONLY": "unused"}

    env = {STATE_ENV: azurite.connection_string()}

    def runner(name: str, event: str) -> Runner:
        github = {
            "event_name": event,
            "base_ref": "main" if event == "pull_request" else "",
            "repository": "contoso/policies",
            "event.pull_request.head.repo.full_name": "contoso/policies",
            "token": "ghs_test",
        }
        return Runner(tmp_path / name, repository, repository, github, secrets, env)

    pull_request = runner("pr-1", "pull_request")
    pull_request.run_job(flow, plan_job)
    assert pull_request.failed is None, pull_request.failed
    assert pull_request.outputs["syncctl"]["exit-code"] == "2"  # changes: nothing applied yet
    comment = Path(pull_request.outputs["syncctl"]["plan-file"]).read_text(encoding="utf-8")
    assert example["name"] in comment
    assert any(a == "marocchino/sticky-pull-request-comment@v2" for a, _ in pull_request.actions)

    merged = runner("apply-1", "push")
    merged.run_job(flow, apply_job)
    assert merged.failed is None, merged.failed
    applied = dict(merged.ran)["syncctl"]
    assert re.search(r"Apply complete: [1-9]\d* applied, 0 already in place", applied.stdout)

    # The hourly run lands on another fresh runner: it sees the first one's state.
    hourly = runner("apply-2", "schedule")
    hourly.run_job(flow, apply_job)
    assert hourly.failed is None, hourly.failed
    again = dict(hourly.ran)["syncctl"]
    assert "Apply complete" not in again.stdout and "No changes" in again.stdout
    check = run_syncctl("plan", "--detailed-exitcode", "policies/", cwd=hourly.workspace, **env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No changes" in check.stdout
    shown = [
        run_syncctl("state", "show", f"policies/{policy_file.name}", cwd=r.workspace, **env)
        for r in (merged, hourly)
    ]
    assert shown[0].returncode == 0, shown[0].stderr
    assert shown[0].stdout == shown[1].stdout
    document = json.loads(shown[0].stdout)
    assert document["last_apply"]["outcome"] == "no_changes"  # the hourly run's
    assert document["managed"]

    # A later pull request's plan finds nothing to do: the state followed it too.
    later = runner("pr-2", "pull_request")
    later.run_job(flow, plan_job)
    assert later.outputs["syncctl"]["exit-code"] == "0"


# --- validation ---------------------------------------------------------------------------


def test_examples_and_manifest_policies_validate(tmp_path: Path) -> None:
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert {p.name for p in examples} >= {"gitops-azure-blob.yaml", "gitops-postgres.yaml"}
    done = run_syncctl("validate", EXAMPLES, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in examples:
        assert f"ok: examples/{path.name} " in done.stdout or f"ok: {path} " in done.stdout

    # The ConfigMap's policy and the azure-blob component's replacement of it.
    texts = {"base": next(iter(cronjob_recipe().policy_files.values()))}
    component = yaml.safe_load((KUBERNETES / "azure-blob" / "policy.yaml").read_text("utf-8"))
    texts["azure-blob"] = next(iter(component["data"].values()))
    for name, text in texts.items():
        directory = tmp_path / name
        directory.mkdir()
        (directory / "policy.yaml").write_text(text, encoding="utf-8")
        done = run_syncctl("validate", directory, cwd=tmp_path)
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
        assert "ok: " in done.stdout
    base, blob = (yaml.safe_load(t) for t in texts.values())
    assert blob["state"]["backend"] == "azure_blob" and "account_url" in blob["state"]
    # The component changes where the state is kept, nothing else.
    assert {k: v for k, v in base.items() if k != "state"} == {
        k: v for k, v in blob.items() if k != "state"
    }
