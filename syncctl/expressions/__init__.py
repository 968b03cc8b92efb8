"""The Entra-compatible attribute-mapping expression language and scoping filters.

``parse`` gives the syntax tree (shared with ``syncctl validate``), ``check`` lists every
problem with its column, ``compile_expression`` builds a fast evaluator once per run, and
``compile_filters`` builds the scoping-filter predicate. See docs/expressions.md.
"""

from __future__ import annotations

from syncctl.expressions.ast import Expr, referenced_attributes
from syncctl.expressions.compiler import CompiledExpression, check, compile_expression
from syncctl.expressions.deferred import Deferred
from syncctl.expressions.filters import check_clause, compile_filters
from syncctl.expressions.functions import FUNCTIONS
from syncctl.expressions.parser import parse
from syncctl.expressions.values import DROP, EvaluationError

__all__ = [
    "DROP",
    "FUNCTIONS",
    "CompiledExpression",
    "Deferred",
    "EvaluationError",
    "Expr",
    "check",
    "check_clause",
    "compile_expression",
    "compile_filters",
    "parse",
    "referenced_attributes",
]
