"""Recursive-descent parser: tokens to a syntax tree, with every error positioned.

Grammar, loosest binding first (``*`` = zero or more)::

    expression  := or
    or          := and ('or' and)*
    and         := not ('and' not)*
    not         := 'not' not | comparison
    comparison  := additive [('=' | '<>' | '<' | '>' | '<=' | '>=') additive]
    additive    := term (('+' | '-') term)*
    term        := unary (('*' | '/') unary)*
    unary       := '-' unary | primary
    primary     := NUMBER | STRING | FIELD | NAME '(' [expression (',' expression)*] ')' | '(' expression ')'

Decisions and why:

- ``not`` binds looser than a comparison and tighter than ``and``/``or`` (as in SQL and Python), so
  ``not [a] = '1'`` means ``not ([a] = '1')``, the only reading anyone writing it intends.
- Comparisons do not chain: ``1 < [a] < 5`` is an error asking for ``and``, not a silent left-to-right evaluation.
- A bare name that is not followed by ``(`` is an error: REDCap has no ``true``/``false`` literals and a forgotten
  bracket (``histopat = '0'``) must not pass.
- Function names are checked against :data:`~oncofhir.logic.functions.FUNCTIONS` and argument counts at parse
  time, so a dictionary linter catches them without data.
- Nesting is limited to :data:`MAX_DEPTH` levels so hostile input cannot exhaust the interpreter stack.
"""

from __future__ import annotations

from oncofhir.logic.errors import LogicSyntaxError
from oncofhir.logic.functions import FUNCTIONS
from oncofhir.logic.lexer import Token, TokenKind, tokenize
from oncofhir.logic.nodes import COMPARISONS, Binary, Call, FieldRef, Node, NumberLit, StringLit, Unary

#: Maximum nesting of parentheses, calls and prefix operators.
MAX_DEPTH = 100


def parse_tree(source: str) -> Node:
    """Parse ``source`` into a syntax tree; raise :class:`LogicSyntaxError` if it is not valid REDCap logic."""
    return _Parser(source, tokenize(source)).parse()


class _Parser:
    """One parse: a cursor over the token list plus the nesting depth."""

    def __init__(self, source: str, tokens: list[Token]) -> None:
        self.source = source
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    # -- cursor ----------------------------------------------------------------------------------------------------
    def peek(self) -> Token:
        """The current token (never past ``END``: the grammar stops there)."""
        return self.tokens[self.index]

    def advance(self) -> Token:
        """Consume and return the current token."""
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, position: int) -> LogicSyntaxError:
        """An error about this source (returned, so call sites read ``raise self.error(...)``)."""
        return LogicSyntaxError(message, self.source, position)

    def unexpected(self, token: Token) -> LogicSyntaxError:
        """The generic error: ``token`` cannot appear here."""
        return self.error(f"unexpected {token.describe()}", token.position)

    def is_op(self, *ops: str) -> bool:
        """Whether the current token is one of the canonical operators ``ops``."""
        token = self.peek()
        return token.kind is TokenKind.OP and token.value in ops

    def enter(self, token: Token) -> None:
        """Count one nesting level (the caller decrements); fail past :data:`MAX_DEPTH`."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels", token.position)

    # -- grammar ---------------------------------------------------------------------------------------------------
    def parse(self) -> Node:
        """The whole input must be one expression: nothing before, nothing left after."""
        if self.peek().kind is TokenKind.END:
            raise self.error("empty expression", 0)
        node = self.or_()
        if self.peek().kind is not TokenKind.END:
            raise self.unexpected(self.peek())
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek().kind is TokenKind.OR:
            token = self.advance()
            node = Binary("or", node, self.and_(), token.position)
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.peek().kind is TokenKind.AND:
            token = self.advance()
            node = Binary("and", node, self.not_(), token.position)
        return node

    def not_(self) -> Node:
        """``not`` takes a whole comparison as its operand."""
        if self.peek().kind is not TokenKind.NOT:
            return self.comparison()
        token = self.advance()
        self.enter(token)
        operand = self.not_()
        self.depth -= 1
        return Unary("not", operand, token.position)

    def comparison(self) -> Node:
        """At most one comparison operator: chains are rejected."""
        node = self.additive()
        if not self.is_op(*COMPARISONS):
            return node
        token = self.advance()
        node = Binary(str(token.value), node, self.additive(), token.position)
        if self.is_op(*COMPARISONS):
            chained = self.peek()
            raise self.error(f"chained comparison '{chained.text}': combine comparisons with 'and'", chained.position)
        return node

    def additive(self) -> Node:
        node = self.term()
        while self.is_op("+", "-"):
            token = self.advance()
            node = Binary(str(token.value), node, self.term(), token.position)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.is_op("*", "/"):
            token = self.advance()
            node = Binary(str(token.value), node, self.unary(), token.position)
        return node

    def unary(self) -> Node:
        """Prefix minus; folded into number literals."""
        if not self.is_op("-"):
            return self.primary()
        token = self.advance()
        self.enter(token)
        operand = self.unary()
        self.depth -= 1
        if isinstance(operand, NumberLit):  # fold: -5 is a literal, so it keeps a spelling for string comparison
            text = operand.text[1:] if operand.text.startswith("-") else f"-{operand.text}"
            return NumberLit(text, -operand.value, token.position)
        return Unary("-", operand, token.position)

    def primary(self) -> Node:
        token = self.peek()
        match token.kind:
            case TokenKind.NUMBER:
                self.advance()
                return NumberLit(token.text, float(token.value or 0.0), token.position)
            case TokenKind.STRING:
                self.advance()
                return StringLit(str(token.value), token.position)
            case TokenKind.FIELD:
                self.advance()
                return FieldRef(str(token.value), token.position)
            case TokenKind.LPAREN:
                self.advance()
                self.enter(token)
                node = self.or_()
                self.close(token)
                self.depth -= 1
                return node
            case TokenKind.NAME:
                return self.call()
        raise self.unexpected(token)

    def call(self) -> Node:
        """A ``NAME``: only valid as a known function applied to the right number of arguments."""
        name_token = self.advance()
        name = str(name_token.value)
        if self.peek().kind is not TokenKind.LPAREN:
            if name in FUNCTIONS:
                raise self.error(f"function '{name}' must be followed by '('", name_token.position)
            raise self.error(
                f"unknown name '{name_token.text}' (field references are written [name], text is quoted)",
                name_token.position,
            )
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise self.error(f"unknown function '{name_token.text}'", name_token.position)
        open_token = self.advance()
        self.enter(open_token)
        args: list[Node] = []
        if self.peek().kind is not TokenKind.RPAREN:
            args.append(self.or_())
            while self.peek().kind is TokenKind.COMMA:
                self.advance()
                args.append(self.or_())
        self.close(open_token)
        self.depth -= 1
        if (message := spec.arity_error(len(args))) is not None:
            raise self.error(message, name_token.position)
        if spec.check is not None and (problem := spec.check(tuple(args))) is not None:
            raise self.error(*problem)
        return Call(name, tuple(args), name_token.position)

    def close(self, open_token: Token) -> None:
        """Consume the ``)`` matching ``open_token``."""
        token = self.peek()
        if token.kind is TokenKind.RPAREN:
            self.advance()
            return
        if token.kind is TokenKind.END:
            raise self.error("'(' is never closed", open_token.position)
        raise self.unexpected(token)
