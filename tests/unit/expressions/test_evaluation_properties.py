"""Properties of evaluation over random well-formed expressions and random source objects."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.expressions import FUNCTIONS, EvaluationError, check, compile_expression
from syncctl.expressions.ast import Attribute, Boolean, Call, Comparison, Expr, Number, String

DETERMINISTIC = sorted(
    name for name, spec in FUNCTIONS.items() if not spec.nondeterministic and not spec.top_level
)
ATTRIBUTES = ["a", "b", "c"]

_values = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.sampled_from(["True", "false", "2021-08-24", "3", "d", "yyyy", "x@y.com"]),
    st.integers(min_value=-5, max_value=300),
    st.booleans(),
    st.lists(st.text(max_size=4), max_size=3),
)
_leaves: st.SearchStrategy[Expr] = st.one_of(
    st.sampled_from(ATTRIBUTES).map(Attribute),
    st.sampled_from(["", "a", " ", ",", "d", "m", "True", "2020-01-02", "[a-z]+"]).map(String),
    st.integers(min_value=-3, max_value=10).map(Number),
    st.booleans().map(Boolean),
)


@st.composite
def _call(draw: st.DrawFn, children: st.SearchStrategy[Expr]) -> Expr:
    name = draw(st.sampled_from(DETERMINISTIC))
    spec = FUNCTIONS[name]
    high = spec.max_args if spec.max_args is not None else spec.min_args + 3
    count = draw(st.integers(min_value=spec.min_args, max_value=high))
    if spec.pairs and count % 2:
        count += 1
    args = tuple(draw(children) for _ in range(count))
    if name == "Replace" and count >= 6:  # replacementAttributeName is a quoted name
        args = (*args[:5], String(draw(st.sampled_from(ATTRIBUTES))), *args[6:])
    if draw(st.integers(0, 9)) == 0:
        op = draw(st.sampled_from(["=", "<>", ">", "<="]))
        return Comparison(op, _operand(args[0] if args else String("")), _operand(draw(children)))
    return Call(name, args)


def _operand(expr: Expr) -> Expr:
    """Comparisons do not chain: a comparison operand that is one is wrapped in CBool."""
    return Call("CBool", (expr,)) if isinstance(expr, Comparison) else expr


_trees = st.recursive(_leaves, _call, max_leaves=10)


def _outcome(text: str, source: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("value", compile_expression(text).evaluate(source))
    except EvaluationError as exc:
        return ("error", (exc.function, exc.message))


@given(_trees, st.fixed_dictionaries(dict.fromkeys(ATTRIBUTES, _values)))
@settings(max_examples=500, deadline=None)
def test_evaluation_is_deterministic_and_only_raises_evaluation_errors(
    tree: Expr, source: dict[str, Any]
) -> None:
    text = str(tree)
    assert check(text, on_create=False) == []
    first = _outcome(text, source)
    second = _outcome(text, dict(reversed(list(source.items()))))
    assert first == second
