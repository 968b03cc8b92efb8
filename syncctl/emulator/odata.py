"""The OData query options the emulator understands: $select, $top, $filter, $search, $count.

$filter covers the subset directory clients use (aad-advanced-queries.md): ``eq``, ``ne``,
``gt/ge/lt/le``, ``in``, ``startswith``, ``endswith``, ``not``, ``and``, ``or``, parentheses
and ``groupTypes/any(c:c eq 'Unified')``. ``ne``, ``not`` and ``endswith`` are advanced
queries: Graph answers them only with ``ConsistencyLevel: eventual`` and ``$count=true``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from syncctl.emulator.responses import GraphRequestError

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<punct>[(),:/])|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<word>[A-Za-z_][\w.]*))"
)
_COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})


@dataclass(frozen=True, slots=True)
class Filter:
    text: str
    predicate: Predicate
    properties: frozenset[str]
    advanced: bool  # uses ne / not / endswith


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # string | punct | number | word
    value: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _invalid(text, f"unexpected character at position {position}")
        kind = match.lastgroup or "word"
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


def _invalid(text: str, detail: str) -> GraphRequestError:
    return GraphRequestError(400, f"Invalid filter clause: {detail}.", "BadRequest")


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


class _Parser:
    def __init__(self, text: str, filterable: frozenset[str], type_name: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0
        self.filterable = filterable
        self.type_name = type_name
        self.properties: set[str] = set()
        self.advanced = False

    def parse(self) -> Predicate:
        if not self.tokens:
            raise _invalid(self.text, "empty expression")
        predicate = self._or()
        if self.position != len(self.tokens):
            raise _invalid(self.text, f"unexpected '{self.tokens[self.position].value}'")
        return predicate

    def _peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self, value: str | None = None) -> _Token:
        token = self._peek()
        if token is None:
            raise _invalid(self.text, "unexpected end of expression")
        if value is not None and token.value.lower() != value:
            raise _invalid(self.text, f"expected '{value}' but found '{token.value}'")
        self.position += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "word" and token.value.lower() == word:
            self.position += 1
            return True
        return False

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._keyword("or"):
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda obj: any(p(obj) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._keyword("and"):
            parts.append(self._unary())
        if len(parts) == 1:
            return parts[0]
        return lambda obj: all(p(obj) for p in parts)

    def _unary(self) -> Predicate:
        if self._keyword("not"):
            self.advanced = True
            inner = self._unary()
            return lambda obj: not inner(obj)
        return self._primary()

    def _property(self, token: _Token) -> str:
        if token.kind != "word":
            raise _invalid(self.text, f"expected a property name, found '{token.value}'")
        name = token.value
        if name not in self.filterable:
            raise GraphRequestError(
                400,
                f"Unsupported or invalid query filter clause specified for property '{name}' "
                f"of resource '{self.type_name}'.",
                "Request_UnsupportedQuery",
            )
        self.properties.add(name)
        return name

    def _literal(self) -> Any:
        token = self._take()
        if token.kind == "string":
            return token.value[1:-1].replace("''", "'")
        if token.kind == "number":
            return float(token.value) if "." in token.value else int(token.value)
        lowered = token.value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "null":
            return None
        raise _invalid(self.text, f"expected a literal, found '{token.value}'")

    def _primary(self) -> Predicate:
        token = self._take()
        if token.value == "(":
            inner = self._or()
            self._take(")")
            return inner
        lowered = token.value.lower()
        if lowered in ("startswith", "endswith"):
            self._take("(")
            name = self._property(self._take())
            self._take(",")
            prefix = self._literal()
            self._take(")")
            if not isinstance(prefix, str):
                raise _invalid(self.text, f"{lowered} needs a string")
            wanted = prefix.casefold()
            if lowered == "endswith":
                self.advanced = True
                return lambda obj: _str_test(obj.get(name), lambda v: v.endswith(wanted))
            return lambda obj: _str_test(obj.get(name), lambda v: v.startswith(wanted))
        name = self._property(token)
        if self._peek() is not None and self._peek() == _Token("punct", "/"):
            return self._lambda(name)
        operator = self._take().value.lower()
        if operator == "in":
            self._take("(")
            values = [self._literal()]
            while self._peek() == _Token("punct", ","):
                self._take(",")
                values.append(self._literal())
            self._take(")")
            folded = {_fold(v) for v in values}
            return lambda obj: _fold(obj.get(name)) in folded
        if operator not in _COMPARISONS:
            raise _invalid(self.text, f"unknown operator '{operator}'")
        value = _fold(self._literal())
        if operator == "ne":
            self.advanced = True
        return _comparison(name, operator, value)

    def _lambda(self, name: str) -> Predicate:
        # groupTypes/any(c:c eq 'Unified') and the like on string collections
        self._take("/")
        self._take("any")
        self._take("(")
        variable = self._take().value
        self._take(":")
        self._take(variable)
        self._take("eq")
        wanted = _fold(self._literal())
        self._take(")")
        return lambda obj: any(_fold(v) == wanted for v in (obj.get(name) or []))


def _str_test(value: Any, test: Callable[[str], bool]) -> bool:
    return isinstance(value, str) and test(value.casefold())


def _comparison(name: str, operator: str, value: Any) -> Predicate:
    if operator == "eq":
        return lambda obj: _fold(obj.get(name)) == value
    if operator == "ne":
        return lambda obj: _fold(obj.get(name)) != value

    def ordered(obj: Mapping[str, Any]) -> bool:
        actual = _fold(obj.get(name))
        if actual is None or value is None or type(actual) is not type(value):
            return False
        if operator == "gt":
            return bool(actual > value)
        if operator == "ge":
            return bool(actual >= value)
        if operator == "lt":
            return bool(actual < value)
        return bool(actual <= value)

    return ordered


def parse_filter(text: str, filterable: frozenset[str], type_name: str) -> Filter:
    parser = _Parser(text, filterable, type_name)
    predicate = parser.parse()
    return Filter(text, predicate, frozenset(parser.properties), parser.advanced)


# ---- $search ---------------------------------------------------------------------------
_SEARCH_CLAUSE = re.compile(r'\s*"(?P<prop>[A-Za-z]+):(?P<term>[^"]*)"\s*')
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Search:
    text: str
    predicate: Predicate


def parse_search(text: str, searchable: frozenset[str]) -> Search:
    """``"displayName:wa" AND "mail:contoso"``: every word of a term must be a prefix of a
    word of the property (Graph tokenizes on spaces, punctuation and case changes)."""
    clauses: list[tuple[str, Predicate]] = []
    position = 0
    joiner = "AND"
    while position < len(text):
        match = _SEARCH_CLAUSE.match(text, position)
        if match is None:
            raise GraphRequestError(
                400, f"Syntax error: invalid $search expression '{text}'.", "Request_BadRequest"
            )
        prop, term = match.group("prop"), match.group("term")
        if prop not in searchable:
            raise GraphRequestError(
                400, f"Unsupported property '{prop}' in $search.", "Request_UnsupportedQuery"
            )
        clauses.append((joiner, _search_term(prop, term)))
        position = match.end()
        rest = text[position:].lstrip()
        if not rest:
            break
        word = rest.split(maxsplit=1)[0]
        if word not in ("AND", "OR"):
            raise GraphRequestError(
                400, f"Syntax error: invalid $search expression '{text}'.", "Request_BadRequest"
            )
        joiner = word
        position = len(text) - len(rest) + len(word)

    def predicate(obj: Mapping[str, Any]) -> bool:
        result = True
        for index, (join, test) in enumerate(clauses):
            if index == 0:
                result = test(obj)
            elif join == "AND":
                result = result and test(obj)
            else:
                result = result or test(obj)
        return result

    return Search(text, predicate)


def _words(value: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", value)
    return [w.casefold() for w in _WORD.findall(spaced)]


def _search_term(prop: str, term: str) -> Predicate:
    wanted = _words(term)

    def test(obj: Mapping[str, Any]) -> bool:
        value = obj.get(prop)
        if not isinstance(value, str):
            return False
        have = _words(value)
        return all(any(h.startswith(w) for h in have) for w in wanted)

    return test


# ---- $select / $top -----------------------------------------------------------------------
def parse_select(
    text: str | None,
    known: frozenset[str],
    type_name: str,
    outside_store: frozenset[str] = frozenset(),
) -> tuple[str, ...] | None:
    """The $select names, canonically spelled. ``outside_store``: properties the resource has
    but the directory does not hold (a user's ``skills``), which Graph answers 501."""
    if text is None or not text.strip():
        return None
    canonical = {name.casefold(): name for name in known}  # Graph matches names ignoring case
    elsewhere = {name.casefold() for name in outside_store}
    names: list[str] = []
    for raw in (n.strip() for n in text.split(",")):
        if not raw:
            continue
        name = canonical.get(raw.casefold())
        if name is None and raw.casefold() in elsewhere:
            # delta-query-overview.md: `$select=skills` -> 501 NotImplemented, "This
            # operation target is not yet supported." (skills live outside Entra ID)
            raise GraphRequestError(
                501, "This operation target is not yet supported.", "NotImplemented"
            )
        if name is None:
            raise GraphRequestError(
                400,
                f"Could not find a property named '{raw}' on type '{type_name}'.",
                "BadRequest",
            )
        names.append(name)
    return tuple(dict.fromkeys(names))


def parse_top(text: str | None, default: int = 100, maximum: int = 999) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise GraphRequestError(
            400, f"Invalid value '{text}' for $top query option.", "BadRequest"
        ) from None
    if value < 1 or value > maximum:
        raise GraphRequestError(
            400,
            f"Invalid page size specified: '{value}'. Must be between 1 and {maximum} inclusive.",
            "Request_BadRequest",
        )
    return value
