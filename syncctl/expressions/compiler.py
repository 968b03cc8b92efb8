"""Static checks and compilation of expressions into Python closures.

``check`` finds every problem ``validate`` reports. ``compile_expression`` turns a checked tree
into nested closures once per run, so evaluating it per user is a few Python calls, not a walk
over the tree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from syncctl.errors import ExpressionSyntaxError
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
    referenced_attributes,
    walk,
)
from syncctl.expressions.functions import FUNCTIONS, UNSUPPORTED, replace
from syncctl.expressions.parser import parse
from syncctl.expressions.values import (
    EvaluationError,
    boolean,
    is_null_or_empty,
    loose_equal,
    ordering_key,
)

Env = Mapping[str, Any]
Evaluator = Callable[[Env], Any]

_RUNTIME_ERRORS = (ValueError, TypeError, OverflowError, ArithmeticError, re.error)


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    text: str
    tree: Expr
    evaluate: Evaluator  # raises EvaluationError
    attributes: frozenset[str]  # Graph properties read (for $select)
    nondeterministic: bool  # uses Guid / Now / RandomString
    redacted: bool  # uses Redact


_SCIM_ONLY = frozenset(":[")


def check(text: str, *, on_create: bool, target_paths: bool = False) -> list[tuple[int, str]]:
    """Every problem in ``text`` as (1-based column, message); [] when it is valid."""
    try:
        tree = parse(text)
    except ExpressionSyntaxError as exc:
        return [(exc.column, exc.message)]
    return check_tree(tree, on_create=on_create, target_paths=target_paths)


def _did_you_mean(name: str) -> str:
    by_case = {n.lower(): n for n in FUNCTIONS}
    if name.lower() in by_case:
        return f' (did you mean "{by_case[name.lower()]}"? function names are case-sensitive)'
    close = difflib.get_close_matches(name, list(FUNCTIONS), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def check_tree(tree: Expr, *, on_create: bool, target_paths: bool = False) -> list[tuple[int, str]]:
    """``target_paths``: attributes are the target's SCIM paths (writeback), which may hold
    schema URNs and value filters; Graph property names may not."""
    problems: list[tuple[int, str]] = []
    allowed_top: set[int] = {id(tree)}
    if isinstance(tree, Call) and tree.name == "Redact" and len(tree.args) == 1:
        allowed_top.add(id(tree.args[0]))
    for node in walk(tree):
        if isinstance(node, Attribute) and not target_paths and _SCIM_ONLY & set(node.name):
            problems.append(
                (
                    node.column,
                    f'"{node.name}" is not a Microsoft Graph property name (SCIM paths '
                    "belong in writeback expressions, which read the target)",
                )
            )
        if isinstance(node, Call):
            spec = FUNCTIONS.get(node.name)
            if spec is None:
                if node.name in UNSUPPORTED:
                    problems.append(
                        (node.column, f"{node.name} is not supported: {UNSUPPORTED[node.name]}")
                    )
                else:
                    problems.append(
                        (node.column, f'unknown function "{node.name}"{_did_you_mean(node.name)}')
                    )
                continue
            arity = spec.arity_problem(len(node.args))
            if arity:
                problems.append((node.column, arity))
            if spec.nondeterministic and not on_create:
                problems.append(
                    (
                        node.column,
                        f"{node.name}() gives a new value every run; "
                        "use it only in a mapping with apply: on_create",
                    )
                )
            if spec.top_level and id(node) not in allowed_top:
                problems.append(
                    (node.column, f"{node.name} must be the outermost function of the mapping")
                )
            if node.name == "Replace" and len(node.args) >= 6:
                name_arg = node.args[5]
                if not isinstance(name_arg, (String, Omitted)):
                    problems.append(
                        (
                            name_arg.column,
                            "replacementAttributeName must be an attribute name in quotes"
                            ' (e.g. "mail")',
                        )
                    )
    return sorted(set(problems))


def compile_expression(
    text: str, *, on_create: bool = True, target_paths: bool = False
) -> CompiledExpression:
    """Parse, check and compile; the first problem is raised as ExpressionSyntaxError."""
    tree = parse(text)
    problems = check_tree(tree, on_create=on_create, target_paths=target_paths)
    if problems:
        column, message = problems[0]
        raise ExpressionSyntaxError(message, column)
    attributes = set(referenced_attributes(tree))
    nodes = walk(tree)
    for node in nodes:
        if isinstance(node, Call) and node.name == "Replace" and len(node.args) >= 6:
            name_arg = node.args[5]
            if isinstance(name_arg, String):
                attributes.add(name_arg.value.split(".", 1)[0])
    calls = [n.name for n in nodes if isinstance(n, Call)]
    return CompiledExpression(
        text=text,
        tree=tree,
        evaluate=_compile(tree),
        attributes=frozenset(attributes),
        nondeterministic=any(FUNCTIONS[name].nondeterministic for name in calls),
        redacted="Redact" in calls,
    )


def _constant(value: Any) -> Evaluator:
    return lambda env: value


def _attribute(name: str) -> Evaluator:
    if name == "manager":
        # A reference: Graph gives the manager as an object when expanded ($expand=manager);
        # expressions see its id either way.
        def reference(env: Env) -> Any:
            value = env.get(name)
            return value.get("id") if isinstance(value, Mapping) else value

        return reference
    if "." not in name:
        return lambda env: env.get(name)
    head, *rest = name.split(".")

    def nested(env: Env) -> Any:
        if name in env:  # a flat SCIM path of the target (writeback): name.givenName
            return env[name]
        value = env.get(head)
        for part in rest:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    return nested


def _compile(node: Expr) -> Evaluator:
    if isinstance(node, Attribute):
        return _attribute(node.name)
    if isinstance(node, (String, Number, Boolean)):
        return _constant(node.value)
    if isinstance(node, Constant):
        return _constant(node.name)
    if isinstance(node, Omitted):
        return _constant(None)
    if isinstance(node, Comparison):
        return _comparison(node.op, _compile(node.left), _compile(node.right))
    args = tuple(_compile(a) for a in node.args)
    lazy = _LAZY.get(node.name)
    if lazy is not None:
        return _guard(node.name, lazy(node, args))
    impl = FUNCTIONS[node.name].impl
    assert impl is not None
    return _eager(node.name, impl, args)


def _eager(name: str, impl: Callable[..., Any], args: tuple[Evaluator, ...]) -> Evaluator:
    # The per-user hot path: arities unrolled, and the error guard in the same frame as the
    # call (try costs nothing in 3.11 unless something is raised).
    if len(args) == 1:
        (a0,) = args

        def run1(env: Env) -> Any:
            try:
                return impl(a0(env))
            except _RUNTIME_ERRORS as exc:
                raise EvaluationError(name, str(exc)) from None

        return run1
    if len(args) == 2:
        a0, a1 = args

        def run2(env: Env) -> Any:
            try:
                return impl(a0(env), a1(env))
            except _RUNTIME_ERRORS as exc:
                raise EvaluationError(name, str(exc)) from None

        return run2
    if len(args) == 3:
        a0, a1, a2 = args

        def run3(env: Env) -> Any:
            try:
                return impl(a0(env), a1(env), a2(env))
            except _RUNTIME_ERRORS as exc:
                raise EvaluationError(name, str(exc)) from None

        return run3

    def run(env: Env) -> Any:
        try:
            return impl(*[a(env) for a in args])
        except _RUNTIME_ERRORS as exc:
            raise EvaluationError(name, str(exc)) from None

    return run


def _guard(name: str, run: Evaluator) -> Evaluator:
    """Name the function in errors from ``run`` (zero cost unless something is raised)."""

    def guarded(env: Env) -> Any:
        try:
            return run(env)
        except _RUNTIME_ERRORS as exc:
            raise EvaluationError(name, str(exc)) from None

    return guarded


def _comparison(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    # Null never satisfies an ordering; = and <> treat null and "" alike (IIF on a null
    # attribute is simply false, where Microsoft's IIF fails).
    if op == "=":
        return lambda env: loose_equal(left(env), right(env))
    if op == "<>":
        return lambda env: not loose_equal(left(env), right(env))

    test: Callable[[Any, Any], bool] = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }[op]

    def ordered(env: Env) -> bool:
        pair = ordering_key(left(env), right(env))
        if pair is None:
            return False
        try:
            return test(*pair)
        except TypeError:
            return False

    return ordered


def _iif(node: Call, args: tuple[Evaluator, ...]) -> Evaluator:
    condition, if_true, if_false = args

    def run(env: Env) -> Any:
        return if_true(env) if boolean(condition(env), "condition") else if_false(env)

    return run


def _switch(node: Call, args: tuple[Evaluator, ...]) -> Evaluator:
    source, default = args[0], args[1]
    pairs = [(args[i], args[i + 1]) for i in range(2, len(args), 2)]

    def run(env: Env) -> Any:
        # Stateless: always evaluated from the current source value, never null because the
        # source "did not change" (Microsoft's documented Switch bug).
        value = source(env)
        for key, result in pairs:
            if loose_equal(value, key(env)):
                return result(env)
        return default(env)

    return run


def _coalesce(node: Call, args: tuple[Evaluator, ...]) -> Evaluator:
    def run(env: Env) -> Any:
        for arg in args:
            value = arg(env)
            if value is not None and value != []:
                return value
        return None

    return run


def _select_unique_value(node: Call, args: tuple[Evaluator, ...]) -> Evaluator:
    # The mapper has no view of the target, so this picks the first rule with a value;
    # uniqueness against the target is not checked (see docs/expressions.md).
    def run(env: Env) -> Any:
        for arg in args:
            value = arg(env)
            if not is_null_or_empty(value):
                return value
        return None

    return run


def _replace(node: Call, args: tuple[Evaluator, ...]) -> Evaluator:
    padded = list(args) + [_constant(None)] * (7 - len(args))
    source, old, pattern, group, new, _name, template = padded
    name_node = node.args[5] if len(node.args) > 5 else None
    lookup = _attribute(name_node.value) if isinstance(name_node, String) else _constant(None)

    def run(env: Env) -> Any:
        return replace(
            source(env), old(env), pattern(env), group(env), new(env), lookup(env), template(env)
        )

    return run


_LAZY: dict[str, Callable[[Call, tuple[Evaluator, ...]], Evaluator]] = {
    "IIF": _iif,
    "Switch": _switch,
    "Coalesce": _coalesce,
    "SelectUniqueValue": _select_unique_value,
    "Replace": _replace,
}
