"""docs/policy.md and the JSON Schema cannot drift; the schema is a usable editor schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from syncctl.policy.reference import generated_block, render_reference
from syncctl.policy.schema import policy_schema

ROOT = Path(__file__).resolve().parents[3]


def test_docs_reference_block_matches_the_schema() -> None:
    text = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")

    assert generated_block(text) == render_reference(), (
        "docs/policy.md is stale: run .venv/bin/python -m syncctl.policy.reference docs/policy.md"
    )


def _property_paths(schema: dict[str, Any], node: Any, prefix: str) -> set[str]:
    if not isinstance(node, dict):
        return set()
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in ("secret", "threshold", "path", "https_url", "guid", "expression"):
            return set()
        node = {**schema["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    paths: set[str] = set()
    for key, child in node.get("properties", {}).items():
        if child is True:
            continue
        paths.add(f"{prefix}.{key}" if prefix else key)
        paths |= _property_paths(schema, child, f"{prefix}.{key}" if prefix else key)
    for branch in node.get("allOf", ()):
        paths |= _property_paths(schema, branch["then"], prefix)
    items = node.get("items")
    while isinstance(items, dict) and isinstance(items.get("items"), dict):
        items, prefix = items["items"], f"{prefix}[]"
    if isinstance(items, dict):
        paths |= _property_paths(schema, items, f"{prefix}[]")
    return paths


def test_every_schema_key_is_documented() -> None:
    schema = policy_schema()
    text = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")

    missing = [
        path for path in sorted(_property_paths(schema, schema, "")) if f"`{path}`" not in text
    ]

    assert missing == []


def test_schema_is_a_valid_draft_2020_12_editor_schema() -> None:
    schema = json.loads((ROOT / "schemas" / "policy.schema.json").read_text(encoding="utf-8"))

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/policy.schema.json")
    for name in schema["properties"]:
        node = schema["properties"][name]
        resolved = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node
        assert resolved.get("title") and resolved.get("description"), name


def test_every_example_policy_names_the_schema_for_editors() -> None:
    for path in sorted([*(ROOT / "policies").glob("*.yaml"), *(ROOT / "examples").glob("*.yaml")]):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/policy.schema.json", path.name
