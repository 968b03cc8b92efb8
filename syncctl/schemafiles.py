"""The JSON Schemas shipped in ``syncctl/schemas/`` (also ``schemas/`` at the top of the repo).

Large documents (plan files, snapshot files of 100,000 users) are checked with jsonschema-rs:
pure-Python jsonschema took minutes on them (it still checks policies, whose errors it maps
back to YAML lines).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs


@cache
def load_schema(name: str) -> dict[str, Any]:
    """``name`` is the file stem: "policy", "plan" or "snapshot"."""
    text = resources.files("syncctl").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _fast_validator(name: str) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(load_schema(name))


def first_error(document: Any, name: str) -> tuple[list[str | int], str] | None:
    """The path to and message of the first problem found, or None when valid."""
    error = next(iter(_fast_validator(name).iter_errors(document)), None)
    if error is None:
        return None
    return list(error.instance_path), error.message
