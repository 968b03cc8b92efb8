"""The parser: syntax, escapes, columns in errors, and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.errors import ExpressionSyntaxError
from syncctl.expressions import check, compile_expression, parse, referenced_attributes
from syncctl.expressions.ast import (
    Attribute,
    Boolean,
    Call,
    Comparison,
    Constant,
    Expr,
    Number,
    Omitted,
    String,
)


def test_attribute_string_number_call() -> None:
    tree = parse('Join(" ", [givenName], [surname], 3, -1.5, true)')
    assert tree == Call(
        "Join",
        (
            String(" "),
            Attribute("givenName"),
            Attribute("surname"),
            Number(3),
            Number(-1.5),
            Boolean(True),
        ),
    )


def test_string_escapes_as_documented() -> None:
    # MS syntax overview: "Company name: \"Contoso\""
    assert parse(r'"Company name: \"Contoso\""') == String('Company name: "Contoso"')
    assert parse(r'"a\\b"') == String("a\\b")
    assert parse(r'"\d+"') == String(r"\d+")  # other backslashes are kept (regexes)


def test_omitted_arguments() -> None:
    tree = parse('Replace([mail], "@contoso.com", , ,"", ,)')
    assert isinstance(tree, Call)
    assert [type(a) for a in tree.args] == [
        Attribute, String, Omitted, Omitted, String, Omitted, Omitted,
    ]  # fmt: skip


def test_comparison_hex_and_constants() -> None:
    assert parse('[country]="USA"') == Comparison("=", Attribute("country"), String("USA"))
    assert parse("BitAnd(&HF, &hf7)") == Call("BitAnd", (Number(15), Number(247)))
    assert parse("InStr([a], [b], 1, vbTextCompare)").args[3] == Constant("vbTextCompare")  # type: ignore[union-attr]


def test_whitespace_and_newlines_between_tokens() -> None:
    assert parse(" SelectUniqueValue(\n  [a] ,\n\t[b]\n) ") == Call(
        "SelectUniqueValue", (Attribute("a"), Attribute("b"))
    )


def test_dotted_and_extension_attributes_are_referenced_by_top_level_name() -> None:
    tree = parse(
        "Coalesce([onPremisesExtensionAttributes.extensionAttribute1], [extension_ab12_code])"
    )
    assert referenced_attributes(tree) == {"onPremisesExtensionAttributes", "extension_ab12_code"}
    compiled = compile_expression("[onPremisesExtensionAttributes.extensionAttribute1]")
    assert compiled.evaluate({"onPremisesExtensionAttributes": {"extensionAttribute1": "x"}}) == "x"
    assert compiled.evaluate({"onPremisesExtensionAttributes": None}) is None


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty expression"),
        ("   ", 4, "empty expression"),
        ("userPrincipalName", 1, 'bare word "userPrincipalName"'),
        ('Join(" ", givenName)', 11, 'bare word "givenName"'),
        ("[mail", 1, "missing ]"),
        ("[ma il]", 4, 'unexpected " " in attribute'),
        ("[]", 2, "attribute name"),
        ('"abc', 1, 'missing closing "'),
        ("ToLower([a]", 1, "missing )"),
        ("ToLower([a] [b])", 13, 'expected "," or ")"'),
        ("ToLower([a]))", 13, "after a complete expression"),
        ("'text'", 1, "double quotes"),
        ("[a] = [b] = [c]", 11, "cannot be chained"),
        ("IIF([a] =, 1, 2)", 10, "expected a value after ="),
        ("&G1", 1, "hexadecimal"),
        ("12ab", 3, "in number"),
        ("@", 1, 'unexpected "@"'),
    ],
)
def test_syntax_errors_name_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        parse(text)
    assert info.value.column == column
    assert fragment in info.value.message
    assert check(text, on_create=False) == [(column, info.value.message)]


def test_nesting_is_bounded() -> None:
    with pytest.raises(ExpressionSyntaxError, match="nested more than"):
        parse("F(" * 200 + ")" * 200)


def test_check_reports_every_problem_with_columns() -> None:
    problems = check("Join(Tolower([a]), Left([b]), Guid(), Frobnicate())", on_create=False)
    assert [column for column, _ in problems] == [6, 20, 31, 39]
    messages = dict(problems)
    assert 'unknown function "Tolower" (did you mean "ToLower"?' in messages[6]
    assert messages[20] == "Left takes 2 arguments, got 1"
    assert "on_create" in messages[31]
    assert messages[39] == 'unknown function "Frobnicate"'


def test_did_you_mean_for_misspellings() -> None:
    [(_, message)] = check("Coalese([a], [b])", on_create=False)
    assert 'did you mean "Coalesce"' in message


def test_valid_expressions_have_no_problems() -> None:
    assert check("Coalesce([mail], [userPrincipalName])", on_create=False) == []


# --- properties ---------------------------------------------------------------------------

_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_leaves: st.SearchStrategy[Expr] = st.one_of(
    _names.map(Attribute),
    st.text(max_size=12).map(String),
    st.integers(min_value=-(10**12), max_value=10**12).map(Number),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
    .filter(lambda f: not f.is_integer())
    .map(Number),
    st.booleans().map(Boolean),
    st.sampled_from(["vbTextCompare", "vbBinaryCompare"]).map(Constant),
)


def _calls(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    argument = st.one_of(children, st.just(Omitted()))
    plain_calls = st.builds(
        lambda name, args: Call(name, tuple(args)),
        _names.filter(lambda n: n.lower() not in ("true", "false")),
        st.lists(argument, max_size=4).filter(lambda a: a != [Omitted()]),
    )
    comparisons = st.builds(
        Comparison, st.sampled_from(["=", "<>", ">", ">=", "<", "<="]), _leaves, _leaves
    )
    return st.one_of(plain_calls, comparisons)


_trees = st.recursive(_leaves, _calls, max_leaves=12)


@given(_trees)
@settings(max_examples=300, deadline=None)
def test_printed_tree_parses_back_to_the_same_tree(tree: Expr) -> None:
    assert parse(str(tree)) == tree


_alphabet = st.sampled_from(list("[]()\",\\ &-=<>.0123456789aAbZ_HvT\n\t'é"))


@given(st.text(alphabet=_alphabet, max_size=40) | st.text(max_size=40))
@settings(max_examples=600, deadline=None)
def test_parser_never_crashes_and_round_trips(text: str) -> None:
    try:
        tree = parse(text)
    except ExpressionSyntaxError as exc:
        assert 1 <= exc.column <= len(text) + 1
        return
    assert parse(str(tree)) == tree


@given(st.text(alphabet=_alphabet, max_size=30))
@settings(max_examples=300, deadline=None)
def test_check_never_crashes(text: str) -> None:
    for column, message in check(text, on_create=False):
        assert column >= 1 and message
