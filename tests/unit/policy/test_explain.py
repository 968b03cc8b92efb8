"""``explain``: the effective policy, complete, stable and free of secret values."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from syncctl.policy import check_policies, explain, load_policies, load_policy

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of policies/ with examples/ beside the demo (its snapshot replaced by a
    placeholder if it is absent)."""
    copy = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", copy)
    for example in (ROOT / "examples").glob("*.yaml"):
        shutil.copy(example, copy / example.name)
    snapshot = copy / "snapshots" / "demo.json"
    if not snapshot.exists():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text("{}")
    return copy


def render(path: Path) -> str:
    effective = explain(load_policy(path))
    text = yaml.safe_dump(effective, sort_keys=False, width=100)
    return text.replace(str(path.parent), "<POLICY_DIR>")


@pytest.mark.parametrize("name", ["sqlite-client-secret", "scim-oauth", "demo"])
def test_explain_matches_golden_file(examples: Path, name: str) -> None:
    golden = GOLDEN / f"explain-{name}.yaml"
    rendered = render(examples / f"{name}.yaml")

    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


def test_explain_shows_defaults_that_were_not_written(examples: Path) -> None:
    effective = explain(load_policy(examples / "scim-token.yaml"))

    assert effective["source"]["nested"] is True
    assert effective["tenant"]["endpoints"] == {
        "authority": "https://login.microsoftonline.com",
        "graph": "https://graph.microsoft.com",
    }
    assert list(effective["mappings"]["user"]["attributes"]) == [
        "userName",
        "displayName",
        "name.givenName",
        "name.familyName",
        'emails[type eq "work"].value',
        "title",
        "department",
    ]
    assert effective["state"]["path"] == str(examples / ".syncctl" / "vault-scim-token.state.json")
    assert effective["deletion"]["out_of_scope"] == "disable"


def test_explain_is_a_fixed_point(examples: Path, tmp_path: Path) -> None:
    """The effective policy is itself a valid policy that means the same thing."""
    for policy in load_policies([examples]):
        effective = explain(policy)
        again = examples / f"again-{policy.name}.yml"
        again.write_text(yaml.safe_dump(effective, sort_keys=False), encoding="utf-8")

        result = check_policies([again])

        assert result.errors == [], [str(d) for d in result.errors]
        assert explain(result.policies[0].policy) == effective
        again.unlink()


def test_secret_values_never_reach_explain(examples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_value = "very-secret-value-1234"
    for name in (
        "CONTOSO_CLIENT_SECRET",
        "SYNCCTL_CERT_PASSWORD",
        "VAULT_SCIM_TOKEN",
        "VAULT_OAUTH_CLIENT_SECRET",
    ):
        monkeypatch.setenv(name, secret_value)

    for policy in load_policies([examples]):
        text = yaml.safe_dump(explain(policy)) + repr(policy)
        assert secret_value not in text
