"""Syntax tree of a parsed REDCap logic expression.

Immutable (frozen, hashable) so a parsed :class:`~oncofhir.logic.expression.Expression` can be cached and shared
between threads and callers. Every node keeps the source position of the token that introduced it, for messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A column reference: ``[name]`` (``name``) or ``[name(code)]`` (``name___code``)."""

    name: str
    position: int


@dataclass(frozen=True, slots=True)
class StringLit:
    """A quoted literal; ``value`` is its content without quotes."""

    value: str
    position: int


@dataclass(frozen=True, slots=True)
class NumberLit:
    """A number literal; ``text`` is its spelling (used when it is compared as a string), ``value`` its float."""

    text: str
    value: float
    position: int


@dataclass(frozen=True, slots=True)
class Unary:
    """``not x`` (``op == "not"``) or ``-x`` (``op == "-"``)."""

    op: str
    operand: Node
    position: int


@dataclass(frozen=True, slots=True)
class Binary:
    """``left op right``; ``op`` is canonical: ``and or = <> < > <= >= + - * /``."""

    op: str
    left: Node
    right: Node
    position: int


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args...)``; ``name`` is lower-case and known, the argument count already checked."""

    name: str
    args: tuple[Node, ...]
    position: int


Node = FieldRef | StringLit | NumberLit | Unary | Binary | Call

COMPARISONS = frozenset({"=", "<>", "<", ">", "<=", ">="})
ARITHMETIC = frozenset({"+", "-", "*", "/"})


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, depth first, the root included."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        yield current
        match current:
            case Unary(operand=operand):
                stack.append(operand)
            case Binary(left=left, right=right):
                stack.extend((right, left))
            case Call(args=args):
                stack.extend(reversed(args))


def field_names(node: Node) -> frozenset[str]:
    """The column names the tree references."""
    return frozenset(n.name for n in walk(node) if isinstance(n, FieldRef))
