"""Rules the JSON Schema cannot say well: cross-field rules, regexes, expressions, files.

Every check reads the raw document defensively (a node of the wrong type was already reported
by the schema and is skipped here), so all problems of a file come out in one pass.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Collection, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from syncctl.policy.build import resolve_path
from syncctl.policy.defaults import DEFAULT_GROUP_ATTRIBUTES, DEFAULT_USER_ATTRIBUTES
from syncctl.policy.problems import Problem, describe_path, did_you_mean
from syncctl.policy.yamlpos import JsonPath

BUILTIN_TARGETS = ("scim", "sqlite")
_NO_VALUE_OPS = frozenset({"is_true", "is_false", "is_null", "is_not_null"})
_REGEX_OPS = frozenset({"regex_match", "not_regex_match"})
# Credentials that sign in as an app registration and therefore need its client id.
_NEEDS_CLIENT_ID = ("client_secret", "certificate", "federated_token")
# Bytes in one path component (ext4, XFS, APFS, NTFS) and in a whole path (Linux PATH_MAX).
NAME_MAX = 255
PATH_MAX = 4096
# Policy values that are file paths, and secret references (whose ``file`` is one).
_PATH_VALUES: tuple[JsonPath, ...] = (
    ("tenant", "snapshot"),
    ("tenant", "ca_bundle"),
    ("tenant", "credential", "certificate", "path"),
    ("tenant", "credential", "federated_token", "file"),
    ("target", "path"),
    ("target", "ca_bundle"),
    ("state", "path"),
)
_SECRET_VALUES: tuple[JsonPath, ...] = (
    ("tenant", "credential", "client_secret"),
    ("tenant", "credential", "certificate", "password"),
    ("target", "token"),
    ("target", "oauth", "client_secret"),
    ("state", "dsn"),
    ("state", "connection_string"),
)
# What each state backend needs: its keys, and the extra that installs its client library.
_STATE_KEYS = {
    "local": frozenset({"path"}),
    "postgres": frozenset({"dsn"}),
    "azure_blob": frozenset({"container", "account_url", "connection_string"}),
}
_STATE_EXTRAS = {"postgres": ("psycopg", "postgres"), "azure_blob": ("azure.storage.blob", "azure")}


def semantic_problems(document: dict[str, Any], policy_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    problems += _unusable_paths(document, policy_dir)
    problems += _tenant(document.get("tenant"), policy_dir)
    problems += _source(document.get("source"))
    problems += _target(document.get("target"))
    problems += _mappings(document.get("mappings"))
    problems += _writeback(document)
    problems += _state(document.get("state"))
    return problems


def _state(state: object) -> Iterator[Problem]:
    if not isinstance(state, dict):
        return
    kind = state.get("backend", "local")
    if kind not in _STATE_KEYS:
        return  # the schema reported it
    for key in sorted(set(state) & (frozenset().union(*_STATE_KEYS.values()) - _STATE_KEYS[kind])):
        yield Problem(("state", key), f"state.{key}: not used by backend {kind}", at_key=True)
    if kind == "postgres" and "dsn" not in state:
        yield Problem(("state",), "state: backend postgres needs dsn: {env: NAME}", missing="dsn")
    if kind == "azure_blob":
        if "container" not in state:
            yield Problem(
                ("state",), "state: backend azure_blob needs container", missing="container"
            )
        if ("account_url" in state) == ("connection_string" in state):
            yield Problem(
                ("state",),
                "state: backend azure_blob needs exactly one of account_url or connection_string",
            )
    if kind in _STATE_EXTRAS:
        module, extra = _STATE_EXTRAS[kind]
        if not _importable(module):
            yield Problem(
                ("state", "backend"),
                f"state.backend: {kind} needs the {extra} extra: pip install 'syncctl[{extra}]'",
            )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # ValueError: an import blocked in sys.modules
        return False


def _tenant(tenant: object, policy_dir: Path) -> Iterator[Problem]:
    if not isinstance(tenant, dict):
        return
    credential, snapshot = tenant.get("credential"), tenant.get("snapshot")
    if credential is not None and snapshot is not None:
        yield Problem(
            ("tenant", "snapshot"),
            "tenant: snapshot and credential are mutually exclusive "
            "(a snapshot is read offline; remove one of them)",
            at_key=True,
        )
    elif credential is None and snapshot is None:
        yield Problem(
            ("tenant",),
            "tenant: needs a credential (to read Microsoft Graph) or a snapshot (offline)",
        )
    if (
        credential is None
        and isinstance(snapshot, str)
        and snapshot
        and path_problem(snapshot, policy_dir) is None  # reported as such, not "not found"
        and not _is_file(snapshot_path := resolve_path(policy_dir, snapshot))
    ):
        yield Problem(("tenant", "snapshot"), f"tenant.snapshot: file not found: {snapshot_path}")
    if isinstance(credential, dict) and "client_id" not in tenant:
        kinds = [kind for kind in _NEEDS_CLIENT_ID if kind in credential]
        if kinds:
            yield Problem(
                ("tenant",),
                f"tenant: missing required key 'client_id' (needed by the {kinds[0]} credential)",
                missing="client_id",
            )


def _unusable_paths(document: dict[str, Any], policy_dir: Path) -> Iterator[Problem]:
    """File paths the OS would refuse (a component over 255 bytes, a NUL): caught here with
    the line, instead of as an OSError from deep inside plan."""
    target = document.get("target")
    builtin_target = isinstance(target, dict) and target.get("type") in BUILTIN_TARGETS
    passwords = _get(document, ("writeback", "passwords"))
    secrets = list(_SECRET_VALUES)
    if isinstance(passwords, list):
        secrets += [("writeback", "passwords", index, "secret") for index in range(len(passwords))]
    paths = [p for p in _PATH_VALUES if builtin_target or p[0] != "target"]
    paths += [(*secret, "file") for secret in secrets]
    for json_path in paths:
        value = _get(document, json_path)
        if isinstance(value, str) and value:
            problem = path_problem(value, policy_dir)
            if problem is not None:
                yield Problem(json_path, f"{describe_path(json_path)}: {problem}")


def path_problem(value: str, policy_dir: Path) -> str | None:
    """Why the OS cannot use the policy path ``value``, or None."""
    if "\x00" in value:
        return "a path cannot contain a NUL character"
    resolved = resolve_path(policy_dir, value)
    for part in resolved.parts:
        size = _byte_length(part)
        if size > NAME_MAX:
            return (
                f"a path component is {size} bytes long, over the file system limit of "
                f"{NAME_MAX} bytes ('{part[:24]}...')"
            )
    size = _byte_length(str(resolved))
    if size >= PATH_MAX:
        return f"the path is {size} bytes long, over the limit of {PATH_MAX - 1} bytes"
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a directory on the way we may not search: not a file we can read
        return False


def _byte_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _get(document: object, path: JsonPath) -> object:
    node = document
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return None
            node = node[part]
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def _source(source: object) -> Iterator[Problem]:
    if not isinstance(source, dict):
        return
    groups = source.get("groups")
    if isinstance(groups, list):
        for index, group in enumerate(groups):
            if isinstance(group, dict) and isinstance(group.get("match"), str):
                yield from _regex(("source", "groups", index, "match"), group["match"])
    filters = source.get("filters")
    if isinstance(filters, list):
        for i, clauses in enumerate(filters):
            if isinstance(clauses, list):
                for j, clause in enumerate(clauses):
                    if isinstance(clause, dict):
                        yield from _clause(("source", "filters", i, j), clause)


def _clause(path: JsonPath, clause: dict[str, Any]) -> Iterator[Problem]:
    op = clause.get("op")
    if not isinstance(op, str):
        return
    where = describe_path(path)
    value = clause.get("value")
    has_value = value is not None
    if op in _NO_VALUE_OPS:
        if has_value:
            yield Problem((*path, "value"), f"{where}: op '{op}' takes no value", at_key=True)
        return
    if not has_value:
        yield Problem(path, f"{where}: op '{op}' needs a value")
        return
    if op == "in":
        if not isinstance(value, list) or not value:
            yield Problem((*path, "value"), f"{where}: op 'in' needs a non-empty list value")
        return
    if isinstance(value, list):
        yield Problem((*path, "value"), f"{where}: op '{op}' needs a single value, not a list")
        return
    if op in _REGEX_OPS:
        if isinstance(value, str):
            yield from _regex((*path, "value"), value)
        else:
            yield Problem((*path, "value"), f"{where}: op '{op}' needs a regex string value")
        return
    yield from _compiler_agrees(path, clause)


def _compiler_agrees(path: JsonPath, clause: dict[str, Any]) -> Iterator[Problem]:
    """The filter compiler has the last word: whatever it would refuse at plan time fails here."""
    from syncctl.expressions import check_clause
    from syncctl.policy.model import FilterClause, FilterOp

    if not isinstance(clause.get("attribute"), str) or clause.get("op") not in set(FilterOp):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = check_clause(
            FilterClause(clause["attribute"], FilterOp(clause["op"]), clause.get("value"))
        )
    if problem is not None:
        yield Problem(path, f"{describe_path(path)}: {problem}")


def _regex(path: JsonPath, pattern: str) -> Iterator[Problem]:
    try:
        with warnings.catch_warnings():
            # "Possible nested set" FutureWarnings would print as stray stderr lines.
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except re.error as exc:
        yield Problem(path, f"{describe_path(path)}: invalid regular expression: {exc}")


def _target(target: object) -> Iterator[Problem]:
    if not isinstance(target, dict):
        return
    kind = target.get("type")
    if kind == "scim" and ("token" in target) == ("oauth" in target):
        yield Problem(("target",), "target: a scim target needs exactly one of token or oauth")
    if not isinstance(kind, str) or kind in BUILTIN_TARGETS:
        return
    plugins = {ep.name for ep in entry_points(group="syncctl.targets")}
    if kind in plugins:
        return
    hint = did_you_mean(kind, BUILTIN_TARGETS)
    if hint:
        yield Problem(("target", "type"), f"target.type: unknown target type '{kind}'{hint}")
    else:
        installed = ", ".join(sorted(plugins)) or "none"
        yield Problem(
            ("target", "type"),
            f"target.type: '{kind}' is not a built-in target (sqlite, scim) and no installed "
            f"plugin provides it (installed plugins: {installed}); plan and apply will fail "
            "until one is installed",
            severity="warning",
        )


def _mappings(mappings: object) -> Iterator[Problem]:
    if not isinstance(mappings, dict):
        return
    for kind in ("user", "group"):
        section = mappings.get(kind)
        if not isinstance(section, dict):
            continue
        attributes = section.get("attributes")
        if isinstance(attributes, dict):
            for target_path, mapping in attributes.items():
                yield from _mapping(("mappings", kind, "attributes", target_path), kind, mapping)
            if kind == "user" and "userName" not in attributes:
                yield Problem(
                    ("mappings", "user", "attributes"),
                    "mappings.user.attributes: must map userName (every target user needs one)",
                    at_key=True,
                )
        mapped: Collection[str] | None = None
        if isinstance(attributes, dict):
            mapped = attributes
        elif attributes is None:
            defaults = DEFAULT_USER_ATTRIBUTES if kind == "user" else DEFAULT_GROUP_ATTRIBUTES
            mapped = [mapping.target for mapping in defaults]
        match = section.get("match")
        if isinstance(match, list) and mapped is not None:
            for index, name in enumerate(match):
                if isinstance(name, str) and name not in mapped:
                    yield Problem(
                        ("mappings", kind, "match", index),
                        f"mappings.{kind}.match: '{name}' is not a mapped attribute"
                        f"{did_you_mean(name, mapped)}",
                    )


def _mapping(path: JsonPath, kind: str, mapping: object) -> Iterator[Problem]:
    target_path = path[-1]
    assert isinstance(target_path, str)
    where = describe_path(path)
    problem = _validate_scim_path(target_path, kind)
    if problem is not None:
        yield Problem(path, f"{where}: {problem}", at_key=True)
    if isinstance(mapping, str):
        yield from _expression(path, mapping, on_create=False)
    elif isinstance(mapping, dict) and isinstance(mapping.get("value"), str):
        on_create = mapping.get("apply") == "on_create"
        yield from _expression((*path, "value"), mapping["value"], on_create=on_create)


def _writeback(document: dict[str, Any]) -> Iterator[Problem]:
    writeback = document.get("writeback")
    if not isinstance(writeback, dict):
        return
    tenant = document.get("tenant")
    if isinstance(tenant, dict) and "snapshot" in tenant:
        yield Problem(
            ("writeback",),
            "writeback: needs a Microsoft Graph tenant, not tenant.snapshot (it reads and "
            "writes Entra users)",
            at_key=True,
        )
    attributes = writeback.get("attributes")
    if not isinstance(attributes, dict):
        return
    mapped = _user_mappings_always(document.get("mappings"))
    for name, expression in attributes.items():
        if not isinstance(expression, str):
            continue
        path = ("writeback", "attributes", name)
        problems = list(_expression(path, expression, on_create=False, target_paths=True))
        yield from problems
        if problems:
            continue
        for target_path in sorted(_target_paths_read(expression)):
            if name in mapped.get(target_path, frozenset()):
                yield Problem(
                    path,
                    f"writeback.attributes.{name}: writes Entra's {name} from the target's "
                    f"{target_path}, which mappings.user.attributes.{target_path} sets from "
                    f"[{name}] on every run (apply: always): the two would loop; map it with "
                    "apply: on_create, or write back another attribute",
                    at_key=True,
                )


def _user_mappings_always(mappings: object) -> dict[str, frozenset[str]]:
    """Target path -> the Graph properties its user mapping reads, for mappings applied on
    every run (the defaults when the policy maps no user attributes)."""
    section = mappings.get("user") if isinstance(mappings, dict) else None
    attributes = section.get("attributes") if isinstance(section, dict) else None
    if attributes is None:
        return {m.target: _graph_names(m.expression) for m in DEFAULT_USER_ATTRIBUTES}
    found: dict[str, frozenset[str]] = {}
    if isinstance(attributes, dict):
        for target_path, mapping in attributes.items():
            expression = mapping
            if isinstance(mapping, dict):
                if mapping.get("apply") == "on_create":
                    continue
                expression = mapping.get("value")
            if isinstance(expression, str):
                found[str(target_path)] = _graph_names(expression)
    return found


def _graph_names(text: str) -> frozenset[str]:
    from syncctl.errors import ExpressionSyntaxError
    from syncctl.expressions import parse, referenced_attributes

    try:
        return referenced_attributes(parse(text))
    except ExpressionSyntaxError:
        return frozenset()  # reported where the mapping is checked


def _target_paths_read(text: str) -> frozenset[str]:
    from syncctl.expressions import parse
    from syncctl.expressions.ast import Attribute, walk

    return frozenset(n.name for n in walk(parse(text)) if isinstance(n, Attribute))


def _expression(
    path: JsonPath, text: str, *, on_create: bool, target_paths: bool = False
) -> Iterator[Problem]:
    if not text:
        return  # the schema reports empty expressions
    for column, message in _check_expression(text, on_create=on_create, target_paths=target_paths):
        yield Problem(path, f"{describe_path(path)}: {message}", expression_column=max(column, 1))


def _check_expression(
    text: str, *, on_create: bool, target_paths: bool = False
) -> list[tuple[int, str]]:
    from syncctl import expressions

    return expressions.check(text, on_create=on_create, target_paths=target_paths)


def _validate_scim_path(path: str, kind: str) -> str | None:
    from syncctl import scimpath
    from syncctl.model import ObjectKind

    return scimpath.validate_path(path, ObjectKind(kind))
