"""Scoping filters: each operator with normal, null, missing, case and regex edge cases."""

from __future__ import annotations

from typing import Any

import pytest

from syncctl.errors import PolicyError
from syncctl.expressions import check_clause, compile_filters
from syncctl.policy.model import FilterClause, FilterOp

Op = FilterOp


def passes(op: FilterOp, value: Any, source: dict[str, Any], attribute: str = "x") -> bool:
    return compile_filters(((FilterClause(attribute, op, value),),))(source)


NULLISH: list[dict[str, Any]] = [{}, {"x": None}, {"x": ""}, {"x": []}]


@pytest.mark.parametrize("source", NULLISH, ids=["missing", "null", "empty", "empty-list"])
@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        (Op.EQUALS, "a", False),
        (Op.NOT_EQUALS, "a", True),
        (Op.IS_TRUE, None, False),
        (Op.IS_FALSE, None, False),
        (Op.IS_NULL, None, True),
        (Op.IS_NOT_NULL, None, False),
        (Op.REGEX_MATCH, ".*", False),
        (Op.NOT_REGEX_MATCH, "a", True),
        (Op.GREATER_THAN, 0, False),
        (Op.GREATER_THAN_OR_EQUALS, 0, False),
        (Op.LESS_THAN, 10, False),
        (Op.INCLUDES, "a", False),
        (Op.STARTS_WITH, "a", False),
        (Op.ENDS_WITH, "a", False),
        (Op.IN, ["a", ""], False),
    ],
)
def test_null_and_missing_are_false_except_is_null_and_not(
    op: FilterOp, value: Any, expected: bool, source: dict[str, Any]
) -> None:
    assert passes(op, value, source) is expected


def test_every_operator_is_covered_by_the_null_table() -> None:
    assert len(FilterOp) == 15


class TestEquals:
    def test_case_sensitive(self) -> None:
        assert passes(Op.EQUALS, "Sales", {"x": "Sales"})
        assert not passes(Op.EQUALS, "sales", {"x": "Sales"})
        assert passes(Op.NOT_EQUALS, "sales", {"x": "Sales"})
        assert not passes(Op.NOT_EQUALS, "Sales", {"x": "Sales"})

    def test_numbers_and_booleans_by_value(self) -> None:
        assert passes(Op.EQUALS, 1, {"x": "1"})
        assert passes(Op.EQUALS, "True", {"x": True})
        assert not passes(Op.EQUALS, "yes", {"x": True})

    def test_multi_valued_any(self) -> None:
        assert passes(Op.EQUALS, "b", {"x": ["a", "b"]})
        assert not passes(Op.NOT_EQUALS, "b", {"x": ["a", "b"]})
        assert passes(Op.NOT_EQUALS, "c", {"x": ["a", "b"]})


class TestBooleans:
    @pytest.mark.parametrize(
        ("value", "is_true", "is_false"),
        [(True, True, False), (False, False, True), ("true", True, False), ("FALSE", False, True),
         ("yes", False, False), (1, False, False)],
    )  # fmt: skip
    def test_is_true_is_false(self, value: Any, is_true: bool, is_false: bool) -> None:
        assert passes(Op.IS_TRUE, None, {"x": value}) is is_true
        assert passes(Op.IS_FALSE, None, {"x": value}) is is_false


class TestNullChecks:
    def test_present_values(self) -> None:
        assert passes(Op.IS_NOT_NULL, None, {"x": "a"})
        assert passes(Op.IS_NOT_NULL, None, {"x": False})  # false is a value, not null
        assert not passes(Op.IS_NULL, None, {"x": 0})


class TestRegex:
    def test_search_is_unanchored_and_case_sensitive(self) -> None:
        assert passes(Op.REGEX_MATCH, "svc-", {"x": "app-svc-1"})
        assert not passes(Op.REGEX_MATCH, "^svc-", {"x": "app-svc-1"})
        assert not passes(Op.REGEX_MATCH, "SVC", {"x": "svc"})
        assert passes(Op.REGEX_MATCH, "(?i)SVC", {"x": "svc"})

    def test_not_regex(self) -> None:
        assert passes(Op.NOT_REGEX_MATCH, "^svc-", {"x": "alice"})
        assert not passes(Op.NOT_REGEX_MATCH, "^svc-", {"x": "svc-backup"})

    def test_non_string_values_are_matched_as_text(self) -> None:
        assert passes(Op.REGEX_MATCH, "^4", {"x": 42})

    def test_invalid_regex_is_a_policy_error(self) -> None:
        clause = FilterClause("x", Op.REGEX_MATCH, "(")
        assert "invalid regular expression" in (check_clause(clause) or "")
        with pytest.raises(PolicyError, match=r"source\.filters"):
            compile_filters(((clause,),))

    def test_regex_compiled_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import re

        predicate = compile_filters(((FilterClause("x", Op.REGEX_MATCH, "^a"),),))
        calls: list[str] = []
        real = re.compile

        def counting(*args: Any, **kwargs: Any) -> Any:
            calls.append("compile")
            return real(*args, **kwargs)

        monkeypatch.setattr(re, "compile", counting)
        for _ in range(5):
            predicate({"x": "abc"})
        assert calls == []


class TestOrdering:
    def test_numeric_comparison_of_numeric_strings(self) -> None:
        assert passes(Op.GREATER_THAN, 9, {"x": "10"})  # as text "10" < "9"
        assert passes(Op.GREATER_THAN_OR_EQUALS, "10", {"x": 10})
        assert not passes(Op.GREATER_THAN, 10, {"x": 10})
        assert passes(Op.LESS_THAN, 10, {"x": 9.5})

    def test_iso_dates_compare_as_text(self) -> None:
        assert passes(Op.GREATER_THAN, "2021-01-01", {"x": "2021-06-30T00:00:00Z"})
        assert not passes(Op.LESS_THAN, "2021-01-01", {"x": "2021-06-30T00:00:00Z"})

    def test_mixed_number_and_text_is_false(self) -> None:
        assert not passes(Op.GREATER_THAN, 0, {"x": True})  # booleans have no order
        assert not passes(Op.GREATER_THAN, 5, {"x": "abc"})
        assert not passes(Op.LESS_THAN, 5, {"x": "abc"})


class TestStrings:
    def test_includes_is_case_sensitive_substring(self) -> None:
        assert passes(Op.INCLUDES, "neer", {"x": "Engineering"})
        assert passes(Op.INCLUDES, "Eng", {"x": "Engineering"})
        assert not passes(Op.INCLUDES, "ENG", {"x": "Engineering"})

    def test_includes_on_a_list_means_one_value_equals(self) -> None:
        assert passes(Op.INCLUDES, "Unified", {"x": ["Unified", "DynamicMembership"]})
        assert not passes(Op.INCLUDES, "Unif", {"x": ["Unified"]})

    def test_starts_and_ends_with(self) -> None:
        assert passes(Op.STARTS_WITH, "svc-", {"x": "svc-backup"})
        assert not passes(Op.STARTS_WITH, "SVC-", {"x": "svc-backup"})
        assert passes(Op.ENDS_WITH, "@contoso.com", {"x": "a@contoso.com"})
        assert not passes(Op.ENDS_WITH, "@CONTOSO.COM", {"x": "a@contoso.com"})
        assert not passes(Op.ENDS_WITH, "1", {"x": 1})


class TestIn:
    def test_membership(self) -> None:
        assert passes(Op.IN, ["Sales", "Marketing"], {"x": "Sales"})
        assert not passes(Op.IN, ["Sales", "Marketing"], {"x": "sales"})
        assert passes(Op.IN, [1, 2], {"x": "2"})

    def test_value_must_be_a_list(self) -> None:
        assert check_clause(FilterClause("x", Op.IN, "Sales")) is not None
        assert check_clause(FilterClause("x", Op.IN, [])) is not None


class TestComposition:
    def test_no_filters_keeps_everyone(self) -> None:
        assert compile_filters(())({})

    def test_or_of_ands(self) -> None:
        # POLICY.md example: department not Contractors AND jobTitle present; OR svc- accounts
        predicate = compile_filters(
            (
                (
                    FilterClause("department", Op.NOT_EQUALS, "Contractors"),
                    FilterClause("jobTitle", Op.IS_NOT_NULL),
                ),
                (FilterClause("userPrincipalName", Op.STARTS_WITH, "svc-"),),
            )
        )
        assert predicate({"department": "Sales", "jobTitle": "Engineer"})
        assert predicate({"jobTitle": "Engineer"})  # missing department: not_equals is true
        assert not predicate({"department": "Contractors", "jobTitle": "Engineer"})
        assert not predicate({"department": "Sales"})
        assert predicate({"department": "Contractors", "userPrincipalName": "svc-x@c.com"})

    @pytest.mark.parametrize(
        ("op", "value", "problem"),
        [(Op.IS_NULL, "x", "takes no value"), (Op.EQUALS, None, "needs a value"),
         (Op.EQUALS, ["a"], "single value")],
    )  # fmt: skip
    def test_clause_shape_problems(self, op: FilterOp, value: Any, problem: str) -> None:
        assert problem in (check_clause(FilterClause("x", op, value)) or "")
