"""Policy mappings + one source object -> the desired flat SCIM object (pure).

Every expression is compiled once per ``Mapper``; ``map`` then evaluates them for one object.
Rules (POLICY.md "Mapping options"):

- ``default`` is used when the expression yields null or empty; null/empty results are left
  out of ``attributes`` (Entra does not provision nulls).
- ``IgnoreFlowIfNullOrEmpty`` drops the path from the flow: absent from ``attributes`` and
  listed in ``ignored`` so the planner leaves the target's value alone (``default`` does not
  apply to a dropped path).
- ``apply: on_create`` paths are listed in ``on_create``; their expressions may use Guid(),
  Now() and RandomString(), whose values are ``Deferred`` (computed at apply time).
- ``Redact()`` anywhere in an expression lists the path in ``redacted``.
- A user whose ``userName`` (a group whose ``displayName``) maps to null/empty is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncctl.errors import Diagnostic, ExpressionSyntaxError, Location, MappingError, PolicyError
from syncctl.expressions import DROP, CompiledExpression, Deferred, EvaluationError
from syncctl.expressions import compile_expression as _compile
from syncctl.expressions.dates import format_entra
from syncctl.model import ObjectKind
from syncctl.policy.model import ApplyMode, ObjectMappings, Policy
from syncctl.scimpath import validate_path

KEY_PATH = {ObjectKind.USER: "userName", ObjectKind.GROUP: "displayName"}

ALWAYS_SELECTED = {
    ObjectKind.USER: frozenset(
        {"id", "displayName", "userPrincipalName", "accountEnabled", "userType"}
    ),
    ObjectKind.GROUP: frozenset(
        {"id", "displayName", "groupTypes", "securityEnabled", "mailEnabled"}
    ),
}


@dataclass(frozen=True, slots=True)
class MappedObject:
    source_id: str
    key: str  # userName (users) / displayName (groups)
    attributes: Mapping[str, Any]  # flat SCIM path -> value (all mappings, incl. on_create)
    on_create: frozenset[str]  # paths set only at create, never compared/updated
    redacted: frozenset[str]  # paths whose values renderers show as "(redacted)"
    ignored: frozenset[str] = frozenset()  # dropped by IgnoreFlowIfNullOrEmpty: leave alone


@dataclass(frozen=True, slots=True)
class _CompiledMapping:
    path: str
    compiled: CompiledExpression
    default: str | None
    on_create: bool


_NOTHING_IGNORED: frozenset[str] = frozenset()


def _final(value: Any) -> Any:
    # A DateTime leaves an expression in Entra's string form.
    return format_entra(value) if isinstance(value, datetime) else value


class Mapper:
    """Compiled mappings of one object kind of one policy."""

    def __init__(self, policy_name: str, mappings: ObjectMappings, kind: ObjectKind) -> None:
        self.policy_name = policy_name
        self.kind = kind
        self.key_path = KEY_PATH[kind]
        compiled: list[_CompiledMapping] = []
        problems: list[Diagnostic] = []
        where = Location(f"policy {policy_name}")
        for mapping in mappings.attributes:
            path_problem = validate_path(mapping.target, kind)
            if path_problem:
                problems.append(Diagnostic(where, f"mappings.{kind}.attributes: {path_problem}"))
                continue
            on_create = mapping.apply is ApplyMode.ON_CREATE
            try:
                expression = _compile(mapping.expression, on_create=on_create)
            except ExpressionSyntaxError as exc:
                problems.append(
                    Diagnostic(
                        where,
                        f'mappings.{kind}.attributes["{mapping.target}"]: '
                        f"column {exc.column}: {exc.message}",
                    )
                )
                continue
            compiled.append(
                _CompiledMapping(mapping.target, expression, mapping.default, on_create)
            )
        if problems:
            raise PolicyError(problems)
        self._mappings = tuple(compiled)
        self.on_create = frozenset(m.path for m in compiled if m.on_create)
        self.redacted = frozenset(m.path for m in compiled if m.compiled.redacted)
        self.source_attributes: frozenset[str] = frozenset().union(
            *(m.compiled.attributes for m in compiled)
        )
        self._plan_time: tuple[tuple[str, Callable[[Mapping[str, Any]], Any], str | None], ...]
        self._plan_time = tuple(
            (m.path, m.compiled.evaluate, m.default)
            for m in compiled
            if not m.compiled.nondeterministic
        )
        self._deferred = tuple(m for m in compiled if m.compiled.nondeterministic)

    def map(self, source_id: str, attributes: Mapping[str, Any]) -> MappedObject:
        """The desired object; raises MappingError naming policy, mapping, object, function."""
        values: dict[str, Any] = {}
        ignored: list[str] = []
        for path, evaluate, default in self._plan_time:
            try:
                value = evaluate(attributes)
            except EvaluationError as exc:
                raise MappingError(
                    self.policy_name, path, source_id, exc.function, exc.message
                ) from None
            if value.__class__ is str and value:  # nearly every value: skip the other tests
                values[path] = value
                continue
            if value is DROP:
                ignored.append(path)
                continue
            if value is None or value in ("", []):
                if default is None:
                    continue
                value = default
            elif value.__class__ is datetime:
                value = _final(value)
            values[path] = value
        for mapping in self._deferred:
            values[mapping.path] = Deferred(
                mapping.compiled.text, source_id, self._resolver(mapping, source_id, attributes)
            )
        key = values.get(self.key_path)
        if key is None and self.kind is ObjectKind.GROUP and self.key_path not in values:
            key = attributes.get("displayName")
        if not isinstance(key, str) or not key:
            raise MappingError(
                self.policy_name,
                self.key_path,
                source_id,
                None,
                f"{self.key_path} is empty: every {self.kind} needs a key"
                if not isinstance(key, Deferred)
                else f"{self.key_path} cannot use Guid(), Now() or RandomString()",
            )
        return MappedObject(
            source_id=source_id,
            key=key,
            attributes=values,
            on_create=self.on_create,
            redacted=self.redacted,
            # One shared empty set: a set per object would be 100,000 more objects to keep.
            ignored=frozenset(ignored) if ignored else _NOTHING_IGNORED,
        )

    def _resolver(
        self, mapping: _CompiledMapping, source_id: str, attributes: Mapping[str, Any]
    ) -> Callable[[], Any]:
        snapshot = dict(attributes)

        def resolve() -> Any:
            try:
                value = mapping.compiled.evaluate(snapshot)
            except EvaluationError as exc:
                raise MappingError(
                    self.policy_name, mapping.path, source_id, exc.function, exc.message
                ) from None
            if value is DROP:
                return None
            if value is None or value in ("", []):
                return mapping.default
            return _final(value)

        return resolve


def source_attributes(policy: Policy) -> dict[ObjectKind, frozenset[str]]:
    """Every Graph property the policy needs per kind (for ``$select``)."""
    result: dict[ObjectKind, frozenset[str]] = {}
    for kind, mappings in (
        (ObjectKind.USER, policy.mappings.user),
        (ObjectKind.GROUP, policy.mappings.group),
    ):
        needed = set(ALWAYS_SELECTED[kind])
        needed |= Mapper(policy.name, mappings, kind).source_attributes
        if kind is ObjectKind.USER:
            needed |= {c.attribute.split(".", 1)[0] for f in policy.source.filters for c in f}
            if policy.writeback is not None:  # Entra's values, to compare with the target's
                needed |= {m.target for m in policy.writeback.attributes}
        result[kind] = frozenset(needed)
    return result


def target_paths(policy: Policy, kind: ObjectKind) -> tuple[str, ...]:
    """The flat SCIM paths a target read must expose for ``kind``: the mapped ones, the match
    paths, the key, and (users) what writeback expressions read from the target."""
    from syncctl.expressions import parse
    from syncctl.expressions.ast import Attribute, walk

    mappings = policy.mappings.user if kind is ObjectKind.USER else policy.mappings.group
    paths = {m.target for m in mappings.attributes} | set(mappings.match) | {KEY_PATH[kind]}
    if kind is ObjectKind.USER and policy.writeback is not None:
        for mapping in policy.writeback.attributes:
            tree = parse(mapping.expression)
            paths |= {n.name for n in walk(tree) if isinstance(n, Attribute)}
    return tuple(sorted(paths))
