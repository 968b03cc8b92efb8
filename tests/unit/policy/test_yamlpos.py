"""YAML -> data with positions: marks are right, hostile documents fail cleanly."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.policy.load import expression_column
from syncctl.policy.yamlpos import Mark, YamlDocumentError, parse, walk_paths


def test_values_and_keys_have_their_line_and_column() -> None:
    value, positions = parse("a:\n  b: [1, {c: x}]\n  d: |\n    text\n")

    assert value == {"a": {"b": [1, {"c": "x"}], "d": "text\n"}}
    assert positions.value(("a", "b")) == Mark(2, 6, None, None)
    assert (
        positions.value(("a", "b", 1, "c")).line,
        positions.value(("a", "b", 1, "c")).column,
    ) == (2, 14)
    assert (positions.key(("a", "d")).line, positions.key(("a", "d")).column) == (3, 3)
    # A path that does not exist falls back to its nearest ancestor.
    assert positions.value(("a", "b", 7, "zz")).column == 6


def test_scalars_keep_yaml_types_but_timestamps_stay_text() -> None:
    value, _ = parse("n: 3\nf: 1.5\nb: true\nz: null\nd: 2024-01-02\ns: '7'\n")

    assert value == {"n": 3, "f": 1.5, "b": True, "z": None, "d": "2024-01-02", "s": "7"}


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a' (first defined on line 1)", 2),
        ("a: &x [*x]\n", "recursive YAML alias is not allowed", 1),
        ("? [1]\n: 2\n", "mapping keys must be strings", 1),
        ("1: x\n", "mapping keys must be strings", 1),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", "YAML merge keys (<<) are not supported", 3),
        ("a: [\n", "invalid YAML", 2),
        ("a: 1\n---\nb: 2\n", "invalid YAML: expected a single document", 2),
        ("a: \x07\n", "unreadable YAML: special character U+0007", 1),
    ],
)
def test_hostile_documents_report_one_clear_problem(text: str, message: str, line: int) -> None:
    with pytest.raises(YamlDocumentError) as caught:
        parse(text)

    problem = caught.value.problems[0]
    assert message in problem.message
    assert problem.line == line


def test_empty_document_is_reported() -> None:
    with pytest.raises(YamlDocumentError, match="file is empty"):
        parse("# only a comment\n")


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]

    with pytest.raises(YamlDocumentError, match="too large"):
        parse("\n".join(lines) + "\n")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(YamlDocumentError):
        parse("a: " + "[" * 5000 + "]" * 5000 + "\n")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_parse_round_trips_data_and_locates_every_node(value: object) -> None:
    if value is None or value == "":
        return  # an empty document is an error on purpose
    parsed, positions = parse(yaml.safe_dump(value))

    assert parsed == value
    for path in walk_paths(parsed):
        assert path in positions.values


@pytest.mark.parametrize(
    ("line", "offset", "expected"),
    [
        # plain scalar: the value starts at column 6
        ("key: abc(def", 4, 9),
        # double-quoted: the quote is column 6, "J" column 7; \" counts as two file columns
        ('key: "J(\\" \\", x"', 1, 7),
        ('key: "J(\\" \\", x"', 3, 9),
        ('key: "J(\\" \\", x"', 4, 11),
        ('key: "J(\\" \\", x"', 8, 16),
        # single-quoted: '' is one value character
        ("key: 'a''b'", 3, 10),
        ("key: 'a''b'", 2, 8),
    ],
)
def test_expression_columns_map_into_the_file(line: str, offset: int, expected: int) -> None:
    _, positions = parse(line + "\n")
    mark = positions.value(("key",))

    assert expression_column(mark, offset) == expected


def test_expression_column_in_block_scalar_points_at_the_scalar() -> None:
    _, positions = parse("key: |\n  Join(\n")

    assert expression_column(positions.value(("key",)), 3) == positions.value(("key",)).column
