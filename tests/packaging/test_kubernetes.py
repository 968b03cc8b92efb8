"""The Kubernetes manifests: ``deploy/kubernetes`` (the CronJob) and ``deploy/kubernetes-watch``
(``syncctl watch`` as a Deployment instead), each alone and with the ``azure-blob`` component.

Every file is checked on its own against the Kubernetes 1.32 OpenAPI schemas in strict mode
(kubernetes-validate: an unknown or misspelt field is an error), and so is every object of each
of the four ``kubectl kustomize`` builds, which also proves the kustomizations, patches and
component resolve. ``tests/cli/test_recipes.py`` runs the CronJob's command itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.cli.binary import REPO

KUBERNETES_VERSION = "1.32.0"  # the oldest release still supported upstream when written
CRONJOB_DIR = REPO / "deploy" / "kubernetes"
WATCH_DIR = REPO / "deploy" / "kubernetes-watch"
NOT_OBJECTS = ("Kustomization", "Component")
# The `syncctl watch` interface the Deployment relies on.
WATCH_OPTIONS = {
    "--every",
    "--jitter",
    "--metrics-listen",
    "--metrics-file",
    "--audit-log",
    "--lock-timeout",
    "--concurrency",
    "--timeout",
    "--allow-mass-delete",
    "--no-color",
}
WATCH_FLAGS = {"--allow-mass-delete", "--no-color"}


def documents(path: Path) -> list[dict[str, Any]]:
    loaded = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert all(isinstance(d, dict) for d in loaded), path
    return loaded


def manifest_files() -> list[Path]:
    return sorted([*CRONJOB_DIR.rglob("*.yaml"), *WATCH_DIR.rglob("*.yaml")])


def strictly_valid(document: dict[str, Any], where: str) -> None:
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{where}: {exc.message} at {list(exc.path)}") from exc


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_manifest_file_is_valid(path: Path) -> None:
    for document in documents(path):
        if document.get("kind") in NOT_OBJECTS:
            continue
        if any("$patch" in line for line in yaml.safe_dump(document).splitlines()):
            # A strategic-merge deletion patch is not an object; the builds check its effect.
            continue
        strictly_valid(document, str(path.relative_to(REPO)))


def uncomment_components(kustomization: Path) -> None:
    text = kustomization.read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("# components:")
    lines[start] = "components:"
    lines[start + 1] = lines[start + 1].replace("#   - ", "  - ", 1)
    assert "azure-blob" in lines[start + 1], kustomization
    kustomization.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    # GitHub's runners and this project's dev containers have kubectl (kustomize built in).
    assert kubectl is not None, "kubectl (with kustomize) is needed to build deploy/kubernetes*"
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d is not None]


@pytest.fixture(params=["cronjob", "cronjob+azure-blob", "watch", "watch+azure-blob"])
def variant(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """A build of one variant, from a copy in which its kustomization's commented-out
    `components:` line is switched on, as the README tells a user to."""
    name = str(request.param)
    for directory in (CRONJOB_DIR, WATCH_DIR):
        shutil.copytree(directory, tmp_path / directory.name)
    root = tmp_path / (CRONJOB_DIR.name if name.startswith("cronjob") else WATCH_DIR.name)
    if name.endswith("azure-blob"):
        uncomment_components(root / "kustomization.yaml")
    return name, build(root)


def pod_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    template = (
        spec["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else spec["template"]
    )
    pod: dict[str, Any] = template["spec"]
    return pod


def test_each_variant_builds_into_valid_consistent_objects(
    variant: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = variant
    for obj in objects:
        strictly_valid(obj, f"{name}: {obj['kind']}/{obj['metadata']['name']}")
    kinds = sorted(obj["kind"] for obj in objects)
    workload = "CronJob" if name.startswith("cronjob") else "Deployment"
    expected = ["ConfigMap", "Namespace", "Secret", "ServiceAccount", workload]
    if workload == "Deployment":
        expected.append("Service")
    assert kinds == sorted(expected)  # one scheduler of the policies, never both
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    (workload_obj,) = [o for o in objects if o["kind"] == workload]
    (container,) = pod_of(workload_obj)["containers"]
    # Every key the pod reads exists in the Secret: a missing one would keep it from starting.
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert keys == set(secret["stringData"])
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    policy = yaml.safe_load(configmap["data"]["policy.yaml"])
    if name.endswith("azure-blob"):
        assert policy["state"]["backend"] == "azure_blob"
        assert "SYNCCTL_STATE_DSN" not in keys
    else:
        assert policy["state"]["backend"] == "postgres"
        assert policy["state"]["dsn"] == {"env": "SYNCCTL_STATE_DSN"}


def test_the_cronjob_runs_every_15_minutes_and_ends_before_the_next() -> None:
    (cronjob,) = documents(CRONJOB_DIR / "cronjob.yaml")
    spec = cronjob["spec"]
    assert spec["schedule"] == "*/15 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    command = pod["containers"][0]["command"]
    timeout = int(command[command.index("--timeout") + 1].removesuffix("m")) * 60
    grace = pod["terminationGracePeriodSeconds"]
    assert timeout + grace < job["activeDeadlineSeconds"] < 15 * 60
    assert spec["startingDeadlineSeconds"] < 15 * 60


def test_the_watch_deployment() -> None:
    (deployment,) = documents(WATCH_DIR / "deployment.yaml")
    (service,) = documents(WATCH_DIR / "service.yaml")
    (cronjob,) = documents(CRONJOB_DIR / "cronjob.yaml")
    spec = deployment["spec"]
    # Two watchers would only fight over the lock, also for the moments of a rolling update.
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:3] == ["syncctl", "watch", "/policies"]
    options = [a for a in command[3:] if a.startswith("--")]
    assert set(options) <= WATCH_OPTIONS, set(options) - WATCH_OPTIONS
    values = {a: command[command.index(a) + 1] for a in options if a not in WATCH_FLAGS}
    assert values["--metrics-listen"] == "0.0.0.0:9185"
    assert "--every" in values and "--allow-mass-delete" not in options
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": 9185, "protocol": "TCP"}
    probe = container["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "metrics"}
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9185"
    assert annotations["prometheus.io/path"] == "/metrics"
    # SIGTERM: the write in progress finishes within the grace period, as in the CronJob.
    cron_pod = pod_of(cronjob)
    assert pod["terminationGracePeriodSeconds"] >= cron_pod["terminationGracePeriodSeconds"]
    # The same pod as the CronJob's, but for what running continuously changes.
    (cron_container,) = cron_pod["containers"]
    for key in ("securityContext", "serviceAccountName", "automountServiceAccountToken", "volumes"):
        assert pod[key] == cron_pod[key], key
    for key in ("env", "securityContext", "volumeMounts", "image", "resources"):
        assert container[key] == cron_container[key], key
    labels = spec["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == 9185 and service_port["targetPort"] == "metrics"
