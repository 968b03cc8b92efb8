"""Parse YAML into plain JSON-like data while remembering where every node came from.

PyYAML's composer gives nodes with marks; we build the Python value ourselves from those nodes
(instead of ``yaml.safe_load``) so that each JSON path (``("tenant", "credential")``) maps back
to a line and column, duplicate keys are caught, and recursive or exploding aliases cannot hang
the loader. This is the technique of pre-commit's ``yaml_rewrite``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml

JsonPath = tuple[str | int, ...]

# Aliases can expand a small file into an enormous value ("billion laughs"); a policy is tiny.
MAX_NODES = 20_000
MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Mark:
    """1-based line and column of a YAML node, plus how its scalar text sits in the file."""

    line: int
    column: int
    style: str | None = None  # scalar style: None (plain), "'", '"', "|", ">"
    raw: str | None = None  # the scalar's source text when it fits on one line


@dataclass(slots=True)
class Positions:
    """Where each value (and each mapping key) of a document is."""

    values: dict[JsonPath, Mark] = field(default_factory=dict)
    keys: dict[JsonPath, Mark] = field(default_factory=dict)

    def value(self, path: JsonPath) -> Mark:
        """The mark of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            mark = self.values.get(path[:end])
            if mark is not None:
                return mark
        return Mark(1, 1)

    def key(self, path: JsonPath) -> Mark:
        """The mark of the key that introduces ``path`` (falls back to its value)."""
        return self.keys.get(path) or self.value(path)


@dataclass(frozen=True, slots=True)
class YamlProblem:
    """A document that is not usable data; ``line``/``column`` are 1-based when known."""

    message: str
    line: int | None = None
    column: int | None = None


class YamlDocumentError(Exception):
    """Raised by ``parse`` with every problem found while turning nodes into data."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


_SCALAR_TYPES = (str, int, float, bool, type(None))


def parse(text: str) -> tuple[object, Positions]:
    """Return the single document in ``text`` as plain data and the positions of its nodes.

    Raises ``YamlDocumentError`` for syntax errors, several documents, duplicate or non-string
    keys, recursive aliases and documents too large or too deeply nested to be a policy.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise YamlDocumentError([_from_marked(exc)]) from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "?")
        message = f"unreadable YAML: special character U+{code:04X} is not allowed"
        problem = YamlProblem(message, line, column)
        raise YamlDocumentError([problem]) from None
    except yaml.YAMLError as exc:
        raise YamlDocumentError([YamlProblem(f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise YamlDocumentError([YamlProblem("invalid YAML: nesting is too deep")]) from None
    if node is None:
        raise YamlDocumentError([YamlProblem("file is empty (expected a policy mapping)")])
    builder = _Builder(text.splitlines())
    value = builder.build(node, ())
    if builder.problems:
        raise YamlDocumentError(builder.problems)
    return value, builder.positions


def _from_marked(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "invalid YAML: " + (", ".join(parts) if parts else "syntax error")
    if mark is None:
        return YamlProblem(message)
    return YamlProblem(message, mark.line + 1, mark.column + 1)


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    return line, position - (before.rfind("\n") + 1) + 1


class _Builder:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.positions = Positions()
        self.problems: list[YamlProblem] = []
        self.constructor = yaml.SafeLoader("")
        self.count = 0
        self.active: set[int] = set()  # ids of collection nodes being built (alias cycles)
        self.too_large = False

    def problem(self, node: yaml.Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append(YamlProblem(message, mark.line + 1, mark.column + 1))

    def mark(self, node: yaml.Node) -> Mark:
        start, end = node.start_mark, node.end_mark
        raw = None
        if isinstance(node, yaml.ScalarNode) and start.line == end.line < len(self.lines):
            raw = self.lines[start.line][start.column : end.column]
        style = node.style if isinstance(node, yaml.ScalarNode) else None
        return Mark(start.line + 1, start.column + 1, style, raw)

    def build(self, node: yaml.Node, path: JsonPath) -> object:
        self.count += 1
        if self.count > MAX_NODES or len(path) > MAX_DEPTH:
            if not self.too_large:
                self.too_large = True
                self.problem(node, "document is too large or too deeply nested for a policy")
            return None
        self.positions.values.setdefault(path, self.mark(node))
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self.active:
            self.problem(node, "recursive YAML alias is not allowed")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode) -> object:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, AttributeError, OverflowError):
            # An explicit tag PyYAML cannot honour (`!!timestamp nonsense`): keep the text.
            value = node.value
        # Timestamps, binary and other YAML-only types are kept as the text the user wrote.
        return value if isinstance(value, _SCALAR_TYPES) else node.value

    def mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, object]:
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(key_node, "YAML merge keys (<<) are not supported in policies")
                continue
            if not isinstance(key, str):
                self.problem(key_node, "mapping keys must be strings")
                continue
            if key in result:
                first = self.positions.keys[(*path, key)]
                self.problem(
                    key_node, f"duplicate key '{key}' (first defined on line {first.line})"
                )
                continue
            self.positions.keys[(*path, key)] = self.mark(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result


def walk_paths(value: object, path: JsonPath = ()) -> Iterator[JsonPath]:
    """Every JSON path inside ``value`` (used by tests to check positions are complete)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_paths(item, (*path, index))
