"""Scoping filters: which source users are in scope (POLICY.md "Scoping filter operators").

A policy's ``source.filters`` is an OR of filters, each an AND of clauses; no filters means
everyone is in scope. Rules, stated once:

- Null, missing, empty string and empty list are all "null". A null attribute makes every
  operator false except ``is_null`` and the negated ones (``not_equals``, ``not_regex_match``),
  which are true (POLICY.md; Entra's NOT REGEX MATCH is false on null, ours is true).
- Text comparisons are case-sensitive, as Entra's EQUALS and Includes are (use ``regex_match``
  with ``(?i)`` for case-insensitive matching). ``is_true``/``is_false`` accept booleans and
  the strings "true"/"false" in any case.
- ``equals``/``in`` compare numbers and booleans by value ("1" equals 1, "True" equals true).
- ``greater_than``, ``greater_than_or_equals``, ``less_than`` compare numerically when both
  sides are numbers (or numeric strings), otherwise as text (so ISO 8601 dates order
  correctly); a value that is neither gives false.
- ``regex_match`` searches (unanchored, like .NET ``Regex.IsMatch``); anchor with ^...$.
  Regexes are compiled once, when the filters are compiled.
- Multi-valued attributes (lists): ``equals``/``in``/``includes``/``starts_with``/``ends_with``/
  ``regex_match`` are true when ANY value matches; ``not_*`` are true when NO value matches.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from syncctl.errors import Diagnostic, Location, PolicyError
from syncctl.expressions.values import is_null_or_empty, loose_equal, ordering_key
from syncctl.policy.model import FilterClause, FilterOp

Predicate = Callable[[Mapping[str, Any]], bool]

_NO_VALUE = frozenset({FilterOp.IS_TRUE, FilterOp.IS_FALSE, FilterOp.IS_NULL, FilterOp.IS_NOT_NULL})
_ORDERING: dict[FilterOp, Callable[[Any, Any], bool]] = {
    FilterOp.GREATER_THAN: operator.gt,
    FilterOp.GREATER_THAN_OR_EQUALS: operator.ge,
    FilterOp.LESS_THAN: operator.lt,
}


def check_clause(clause: FilterClause) -> str | None:
    """None if ``clause`` can be compiled, else a one-line message (for ``validate``)."""
    op, value = clause.op, clause.value
    if not clause.attribute:
        return "a filter clause needs an attribute"
    if op in _NO_VALUE:
        return None if value is None else f"{op} takes no value"
    if value is None:
        return f"{op} needs a value"
    if op is FilterOp.IN:
        if not isinstance(value, (list, tuple)) or not value:
            return "in needs a non-empty list of values"
        return None
    if isinstance(value, (list, tuple, dict)):
        return f"{op} needs a single value, not a list"
    if op in (FilterOp.REGEX_MATCH, FilterOp.NOT_REGEX_MATCH):
        try:
            re.compile(str(value))
        except re.error as exc:
            return f'invalid regular expression "{value}": {exc}'
    return None


def _values(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else [raw]


def _any(attribute: str, test: Callable[[Any], bool]) -> Predicate:
    """True when the attribute is present and any of its values passes ``test``."""

    def predicate(source: Mapping[str, Any]) -> bool:
        raw = source.get(attribute)
        if is_null_or_empty(raw):
            return False
        return any(test(v) for v in _values(raw) if v is not None)

    return predicate


def _negate(inner: Predicate) -> Predicate:
    return lambda source: not inner(source)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def compile_clause(clause: FilterClause) -> Predicate:
    problem = check_clause(clause)
    if problem:
        raise PolicyError(
            [Diagnostic(Location("source.filters"), f"{clause.attribute} {clause.op}: {problem}")]
        )
    attribute, op, value = clause.attribute, clause.op, clause.value
    if op is FilterOp.IS_NULL:
        return lambda source: is_null_or_empty(source.get(attribute))
    if op is FilterOp.IS_NOT_NULL:
        return lambda source: not is_null_or_empty(source.get(attribute))
    if op in (FilterOp.IS_TRUE, FilterOp.IS_FALSE):
        wanted = op is FilterOp.IS_TRUE

        def truth(v: Any) -> bool:
            if isinstance(v, bool):
                return v is wanted
            return isinstance(v, str) and v.strip().lower() == ("true" if wanted else "false")

        return _any(attribute, truth)
    if op in (FilterOp.EQUALS, FilterOp.NOT_EQUALS):
        equals = _any(attribute, lambda v: loose_equal(v, value))
        return equals if op is FilterOp.EQUALS else _negate(equals)
    if op is FilterOp.IN:
        choices = tuple(value)
        return _any(attribute, lambda v: any(loose_equal(v, c) for c in choices))
    if op in (FilterOp.REGEX_MATCH, FilterOp.NOT_REGEX_MATCH):
        regex = re.compile(str(value))

        def matches(v: Any) -> bool:
            return regex.search(v if isinstance(v, str) else str(v)) is not None

        found = _any(attribute, matches)
        return found if op is FilterOp.REGEX_MATCH else _negate(found)
    if op in _ORDERING:
        test = _ORDERING[op]

        def ordered(v: Any) -> bool:
            pair = ordering_key(v, value)
            if pair is None:
                return False
            try:
                return bool(test(*pair))
            except TypeError:
                return False

        return _any(attribute, ordered)
    needle = str(value)
    if op is FilterOp.INCLUDES:
        # On a list, "includes" means one of its values equals the value.
        def includes(source: Mapping[str, Any]) -> bool:
            raw = source.get(attribute)
            if is_null_or_empty(raw):
                return False
            if isinstance(raw, list):
                return any(loose_equal(v, value) for v in raw)
            return isinstance(raw, str) and needle in raw

        return includes
    if op is FilterOp.STARTS_WITH:
        return _any(attribute, lambda v: isinstance(v, str) and v.startswith(needle))
    if op is FilterOp.ENDS_WITH:
        return _any(attribute, lambda v: isinstance(v, str) and v.endswith(needle))
    raise AssertionError(f"unhandled filter operator {op}")  # pragma: no cover


def compile_filters(filters: tuple[tuple[FilterClause, ...], ...]) -> Predicate:
    """One predicate: OR of filters, each the AND of its clauses; no filters: always True."""
    if not filters:
        return lambda source: True
    compiled = [tuple(compile_clause(c) for c in clauses) for clauses in filters]

    def in_scope(source: Mapping[str, Any]) -> bool:
        return any(all(p(source) for p in clauses) for clauses in compiled)

    return in_scope
