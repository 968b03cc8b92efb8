"""The expression syntax tree.

Nodes are frozen and compare by content only (``column`` is excluded from equality), so an
expression printed with ``str()`` and parsed again gives an equal tree. ``str()`` is the
canonical spelling: ``Name(arg, arg)``, one space after each comma.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

COMPARISON_OPERATORS = ("=", "<>", ">=", "<=", ">", "<")
COMPARE_CONSTANTS = ("vbBinaryCompare", "vbTextCompare")


def quote(text: str) -> str:
    """A string literal: backslash escapes ``\\`` and ``"`` (the only escapes the syntax has)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Attribute:
    """``[name]``: a Microsoft Graph property of the source object (dots reach into objects)."""

    name: str
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"[{self.name}]"


@dataclass(frozen=True, slots=True)
class String:
    value: str
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return quote(self.value)


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        if isinstance(self.value, int):
            return str(self.value)
        text = repr(self.value)
        # repr may use exponent notation, which the grammar does not have.
        return format(Decimal(text), "f") if "e" in text or "E" in text else text


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True)
class Constant:
    """A named constant: ``vbTextCompare`` / ``vbBinaryCompare`` (InStr's compareType)."""

    name: str
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Omitted:
    """An argument left out between commas: ``Replace([mail], "x", , , "", , )``."""

    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.name}({', '.join(str(a) for a in self.args)})"


@dataclass(frozen=True, slots=True)
class Comparison:
    """``left op right`` with op one of = <> > >= < <= (IIF conditions); not chainable."""

    op: str
    left: Expr
    right: Expr
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


Expr = Attribute | String | Number | Boolean | Constant | Omitted | Call | Comparison


def walk(expr: Expr) -> list[Expr]:
    """Every node of ``expr``, parents before children, in source order."""
    out: list[Expr] = []
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, Call):
            stack.extend(reversed(node.args))
        elif isinstance(node, Comparison):
            stack.extend((node.right, node.left))
    return out


def referenced_attributes(expr: Expr) -> frozenset[str]:
    """The Graph properties ``expr`` reads (top-level names, for ``$select``)."""
    return frozenset(n.name.split(".", 1)[0] for n in walk(expr) if isinstance(n, Attribute))
