"""Check a parsed policy against ``schemas/policy.schema.json`` and phrase errors for people.

jsonschema's own messages quote the offending value (a literal secret would be echoed) and name
schema keywords; here each error becomes one readable line located at the YAML node at fault.
A subschema may carry ``x-error`` (the message to use for any failure in it) and ``x-secret``
(never quote the value; a string there is a literal secret).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from syncctl.policy.problems import Problem, closest, describe_path, did_you_mean
from syncctl.schemafiles import load_schema

_TYPE_NAMES = {
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def policy_schema() -> dict[str, Any]:
    return load_schema("policy")


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(policy_schema())


def schema_problems(document: object) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for error in _leaf_errors(_validator().iter_errors(document)):
        for problem in _phrase(error):
            identity = (problem.path, problem.message, problem.at_key)
            if identity not in seen:
                seen.add(identity)
                problems.append(problem)
    return problems


def _leaf_errors(errors: Any) -> list[ValidationError]:
    """``allOf``/``if-then`` wrap nothing in 2020-12, but be safe: expand any error context."""
    leaves: list[ValidationError] = []
    for error in errors:
        if error.context:
            leaves.extend(_leaf_errors(error.context))
        else:
            leaves.append(error)
    return leaves


def _phrase(error: ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    where = describe_path(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    keyword = error.validator
    # jsonschema types these as "Any | Unset"; for a reported error both are always set.
    expected: Any = error.validator_value
    instance: Any = error.instance

    if keyword == "additionalProperties" and isinstance(instance, dict):
        allowed = set(schema.get("properties", {}))
        if schema.get("x-secret"):
            return [Problem(path, f"{where}: {schema['x-error']}")]
        return [
            Problem(
                (*path, key),
                f"unknown key '{key}' in {where}{did_you_mean(key, allowed)}",
                at_key=True,
                suggestion=closest(key, allowed),
            )
            for key in sorted(instance)
            if key not in allowed
        ]
    if keyword == "required":
        missing = [key for key in expected if key not in instance]
        return [
            Problem(path, f"{where}: missing required key '{key}'", missing=key) for key in missing
        ]
    if schema.get("x-secret") and isinstance(instance, str):
        # Never quote the value: it is probably the secret itself.
        message = "a literal secret is not allowed here: use {env: NAME} or {file: PATH}"
        return [Problem(path, f"{where}: {message}")]
    if "x-error" in schema:
        return [Problem(path, f"{where}: {schema['x-error']}")]
    if keyword == "enum":
        choices = [str(choice) for choice in expected]
        value = instance
        shown = f"'{value}'" if isinstance(value, str) and len(value) <= 60 else "this value"
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return [Problem(path, f"{where}: {shown} is not one of {', '.join(choices)}{hint}")]
    if keyword == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
        return [Problem(path, f"{where}: must be {wanted}, not {_kind(instance)}")]
    if keyword == "minLength":
        return [Problem(path, f"{where}: must not be empty")]
    if keyword in ("minItems", "minProperties"):
        return [Problem(path, f"{where}: must not be empty")]
    if keyword == "uniqueItems":
        return [Problem(path, f"{where}: lists the same entry twice")]
    if keyword == "minimum":
        return [Problem(path, f"{where}: must be at least {expected}")]
    if keyword == "const":
        return [Problem(path, f"{where}: must be {expected!r}")]
    return [Problem(path, f"{where}: {error.message}")]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"
