"""A small FHIRPath parser for the subset the fast path compiles, giving fhirpathpy's AST shape.

fhirpathpy parses with an ANTLR grammar at about 3 ms an expression, and a wide view has ~400 expressions: parsing
alone would add over a second to every per-center job. This recursive-descent parser covers member access,
function calls, literals, ``%constants``, ``$this``, indexers, ``=``/``!=``, ``and``/``or`` and parentheses (what
generated views use) in microseconds, and returns None for anything else, which then goes to fhirpathpy's parser.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<number>\d+(?:\.\d+)?(?![\w.]))
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
    | (?P<this>\$this)
    | (?P<op>!=|[.()\[\],=%])
    )""",
    re.X,
)


class _Unparsable(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _Unparsable
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _node(
    kind: str, children: list[dict[str, Any]], text: str | None = None, terminal: list[str] | None = None
) -> dict[str, Any]:
    node: dict[str, Any] = {"type": kind, "terminalNodeText": terminal or []}
    if children:
        node["children"] = children
    if text is not None:
        node["text"] = text
    return node


def _identifier(name: str) -> dict[str, Any]:
    return {"type": "Identifier", "terminalNodeText": [name], "text": name}


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise _Unparsable
        self.i += 1
        return tok

    def expression(self) -> dict[str, Any]:
        return self.disjunction()

    def disjunction(self) -> dict[str, Any]:
        left = self.conjunction()
        while (tok := self.peek()) is not None and tok == ("ident", "or"):
            self.take()
            left = _node("OrExpression", [left, self.conjunction()], terminal=["or"])
        return left

    def conjunction(self) -> dict[str, Any]:
        left = self.equality()
        while (tok := self.peek()) is not None and tok == ("ident", "and"):
            self.take()
            left = _node("AndExpression", [left, self.equality()], terminal=["and"])
        return left

    def equality(self) -> dict[str, Any]:
        left = self.postfix()
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in {"=", "!="}:
            self.take()
            left = _node("EqualityExpression", [left, self.postfix()], terminal=[tok[1]])
        return left

    def postfix(self) -> dict[str, Any]:
        start = self.i
        node = self.term()
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in {".", "["}:
            self.take()
            if tok[1] == "[":
                index = self.expression()
                self.take("]")
                node = _node("IndexerExpression", [node, index], terminal=["[", "]"])
            else:
                node = _node("InvocationExpression", [node, self.invocation()], self.text(start), ["."])
        return node

    def text(self, start: int) -> str:
        return "".join(v for _, v in self.tokens[start : self.i])

    def invocation(self) -> dict[str, Any]:
        kind, value = self.take()
        if kind == "this":
            return _node("ThisInvocation", [], terminal=["$this"])
        if kind != "ident":
            raise _Unparsable
        if (tok := self.peek()) is not None and tok == ("op", "("):
            self.take()
            params: list[dict[str, Any]] = []
            if self.peek() != ("op", ")"):
                params.append(self.expression())
                while self.peek() == ("op", ","):
                    self.take()
                    params.append(self.expression())
            self.take(")")
            children = [_identifier(value)]
            if params:
                children.append(_node("ParamList", params))
            return _node("FunctionInvocation", [_node("Functn", children, terminal=["(", ")"])])
        return _node("MemberInvocation", [_identifier(value)])

    def term(self) -> dict[str, Any]:
        start = self.i
        tok = self.peek()
        if tok is None:
            raise _Unparsable
        kind, value = tok
        if kind == "string":
            self.take()
            inner = _node("LiteralTerm", [_node("StringLiteral", [], value, [value])], value)
        elif kind == "number":
            self.take()
            inner = _node("LiteralTerm", [_node("NumberLiteral", [], value, [value])], value)
        elif kind == "ident" and value in {"true", "false"}:
            self.take()
            inner = _node("LiteralTerm", [_node("BooleanLiteral", [], value, [value])], value)
        elif kind == "ident" and value in {"and", "or"}:
            raise _Unparsable
        elif value == "%":
            self.take()
            name = self.take()
            if name[0] != "ident":
                raise _Unparsable
            inner = _node("ExternalConstantTerm", [_node("ExternalConstant", [_identifier(name[1])], terminal=["%"])])
        elif value == "(":
            self.take()
            expr = self.expression()
            self.take(")")
            inner = _node("ParenthesizedTerm", [expr], terminal=["(", ")"])
        else:
            inner = _node("InvocationTerm", [self.invocation()])
        return _node("TermExpression", [inner], self.text(start))


def parse_subset(text: str) -> dict[str, Any] | None:
    """fhirpathpy's AST (``{"children": [expression]}``) for an expression in the subset, else None."""
    try:
        parser = _Parser(_tokens(text))
        expr = parser.expression()
        if parser.peek() is not None:
            return None
    except _Unparsable:
        return None
    return {"children": [expr]}
