"""Parser for Entra ID attribute-mapping expressions.

Grammar (whitespace allowed between tokens)::

    expression := operand [ ("=" | "<>" | ">" | ">=" | "<" | "<=") operand ]
    operand    := "[" attribute "]" | string | number | "true" | "false"
                | vbTextCompare | vbBinaryCompare | name "(" [ argument ("," argument)* ] ")"
    argument   := expression | (nothing: an omitted optional argument)
    string     := '"' (any character but '"' and '\\' | '\\"' | '\\\\')* '"'
    number     := ["-"] digits ["." digits] | "&H" hexdigits

Function names are not checked here (``check`` does that), so one tree serves ``validate``,
the evaluator and the printer.
"""

from __future__ import annotations

from syncctl.errors import ExpressionSyntaxError
from syncctl.expressions.ast import (
    COMPARE_CONSTANTS,
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

MAX_DEPTH = 64  # deeper nesting is certainly a mistake, and keeps recursion bounded

_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
# ":" for SCIM schema URNs (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:...),
# which only writeback expressions (over the target's attributes) may use.
_ATTRIBUTE_CHARS = _NAME_CHARS | frozenset(".-$#@:")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_SPACE = frozenset(" \t\r\n")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, message: str, pos: int | None = None) -> ExpressionSyntaxError:
        return ExpressionSyntaxError(message, (self.pos if pos is None else pos) + 1)

    def skip_space(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def describe_here(self) -> str:
        return f'"{self.peek()}"' if self.peek() else "end of expression"

    def parse(self) -> Expr:
        self.skip_space()
        if not self.peek():
            raise self.fail("empty expression")
        expr = self.expression()
        self.skip_space()
        if self.pos < len(self.text):
            raise self.fail(f"unexpected {self.describe_here()} after a complete expression")
        return expr

    def expression(self) -> Expr:
        start = self.pos
        left = self.operand()
        self.skip_space()
        op = self.comparison_operator()
        if op is None:
            return left
        self.skip_space()
        if not self.peek() or self.peek() in ",)":
            raise self.fail(f"expected a value after {op}")
        right = self.operand()
        self.skip_space()
        if self.comparison_operator(consume=False) is not None:
            raise self.fail("comparisons cannot be chained; nest IIF() instead")
        return Comparison(op, left, right, start + 1)

    def comparison_operator(self, *, consume: bool = True) -> str | None:
        text, pos = self.text, self.pos
        for op in ("<>", ">=", "<=", "=", ">", "<"):
            if text.startswith(op, pos):
                if consume:
                    self.pos = pos + len(op)
                return op
        return None

    def operand(self) -> Expr:
        char = self.peek()
        start = self.pos
        if char == "[":
            return self.attribute()
        if char == '"':
            return String(self.string(), start + 1)
        if char in _DIGITS or char in {"-", "&"}:
            return self.number()
        if char in _NAME_START:
            return self.name_or_call()
        if not char:
            raise self.fail("unexpected end of expression: expected a value")
        if char == "'":
            raise self.fail('strings use double quotes ("text"), not single quotes')
        raise self.fail(f'unexpected "{char}": expected [attribute], "string", number or Function(')

    def attribute(self) -> Attribute:
        start = self.pos
        self.pos += 1
        text, pos = self.text, self.pos
        while pos < len(text):
            if text[pos] in _ATTRIBUTE_CHARS:
                pos += 1
            elif text[pos] == "[":  # a SCIM value filter: [phoneNumbers[type eq "work"].value]
                pos = self._filter_end(pos)
            else:
                break
        name = text[self.pos : pos]
        if pos >= len(text):
            raise self.fail("unterminated attribute: missing ]", start)
        if text[pos] != "]":
            raise self.fail(f'unexpected "{text[pos]}" in attribute name', pos)
        if not name or name[0] not in _NAME_START:
            raise self.fail("attribute name must start with a letter or _", start + 1)
        self.pos = pos + 1
        return Attribute(name, start + 1)

    def _filter_end(self, start: int) -> int:
        """Just past the ``]`` that closes the filter opening at ``start`` (quotes skipped)."""
        text, pos = self.text, start + 1
        while pos < len(text):
            char = text[pos]
            if char == '"':
                pos += 1
                while pos < len(text) and text[pos] != '"':
                    pos += 2 if text[pos] == "\\" else 1
            elif char == "]":
                return pos + 1
            elif char == "[":
                raise self.fail('unexpected "[" inside an attribute filter', pos)
            pos += 1
        raise self.fail("unterminated attribute filter: missing ]", start)

    def string(self) -> str:
        start = self.pos
        text = self.text
        pos = start + 1
        chars: list[str] = []
        while pos < len(text):
            char = text[pos]
            if char == '"':
                self.pos = pos + 1
                return "".join(chars)
            if char == "\\":
                nxt = text[pos + 1] if pos + 1 < len(text) else ""
                if nxt in ('"', "\\"):
                    chars.append(nxt)
                    pos += 2
                    continue
                # Entra keeps any other backslash as it is (regex patterns such as "\d").
                chars.append(char)
                pos += 1
                continue
            chars.append(char)
            pos += 1
        raise self.fail('unterminated string: missing closing "', start)

    def number(self) -> Number:
        start = self.pos
        text = self.text
        if text.startswith(("&H", "&h"), start):
            pos = start + 2
            while pos < len(text) and text[pos] in _HEX:
                pos += 1
            if pos == start + 2:
                raise self.fail("expected hexadecimal digits after &H", start)
            self.pos = pos
            return Number(int(text[start + 2 : pos], 16), start + 1)
        if text[start] == "&":
            raise self.fail('unexpected "&": hexadecimal numbers are written &HFF', start)
        pos = start + 1 if text[start] == "-" else start
        digits_start = pos
        while pos < len(text) and text[pos] in _DIGITS:
            pos += 1
        if pos == digits_start:
            raise self.fail('expected a digit after "-"', start)
        is_float = False
        if (
            pos < len(text)
            and text[pos] == "."
            and pos + 1 < len(text)
            and text[pos + 1] in _DIGITS
        ):
            is_float = True
            pos += 1
            while pos < len(text) and text[pos] in _DIGITS:
                pos += 1
        if pos < len(text) and text[pos] in _NAME_CHARS:
            raise self.fail(f'unexpected "{text[pos]}" in number', pos)
        self.pos = pos
        literal = text[start:pos]
        return Number(float(literal) if is_float else int(literal), start + 1)

    def name_or_call(self) -> Expr:
        start = self.pos
        text = self.text
        pos = start
        while pos < len(text) and text[pos] in _NAME_CHARS:
            pos += 1
        name = text[start:pos]
        self.pos = pos
        self.skip_space()
        if self.peek() != "(":
            if name.lower() in ("true", "false"):
                return Boolean(name.lower() == "true", start + 1)
            if name in COMPARE_CONSTANTS:
                return Constant(name, start + 1)
            raise self.fail(
                f'bare word "{name}": write a string as "{name}" or an attribute as [{name}]',
                start,
            )
        return self.call(name, start)

    def call(self, name: str, start: int) -> Call:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"functions nested more than {MAX_DEPTH} deep", start)
        self.pos += 1  # "("
        self.skip_space()
        args: list[Expr] = []
        if self.peek() == ")":
            self.pos += 1
            self.depth -= 1
            return Call(name, (), start + 1)
        while True:
            self.skip_space()
            if self.peek() in (",", ")"):
                args.append(Omitted(self.pos + 1))
            elif not self.peek():
                raise self.fail(f"unterminated call to {name}: missing )", start)
            else:
                args.append(self.expression())
            self.skip_space()
            char = self.peek()
            if char == ",":
                self.pos += 1
                continue
            if char == ")":
                self.pos += 1
                self.depth -= 1
                return Call(name, tuple(args), start + 1)
            if not char:
                raise self.fail(f"unterminated call to {name}: missing )", start)
            raise self.fail(f'expected "," or ")" in call to {name}, found "{char}"')


def parse(text: str) -> Expr:
    """The syntax tree of ``text``; raises ExpressionSyntaxError with a 1-based column."""
    return _Parser(text).parse()
