"""Tokeniser for REDCap logic: turns expression text into positioned tokens.

Its job is to reject everything that is not REDCap logic as early and as precisely as possible, with the 0-based
character offset of the culprit, because these expressions are typed by hand into data dictionaries and a precise
position is what makes a linter message actionable.

Accepted lexemes
----------------
- Field references ``[name]`` and checkbox references ``[name(code)]``. ``name`` is ``[A-Za-z0-9_]+`` and is
  lower-cased (REDCap variable names are lower-case; exports use them as column names). A checkbox reference
  denotes the export column ``name___code``; ``code`` is ``[A-Za-z0-9_.-]+``, lower-cased, with ``.`` and ``-``
  replaced by ``_`` as REDCap does when it names checkbox export columns. No whitespace inside the brackets, no
  event prefixes (``[event][field]``), no smart variables (``[field:value]``).
- String literals in single or double quotes. A doubled quote character inside the literal stands for one quote
  (``'it''s'`` is ``it's``); there are no other escapes (a backslash is an ordinary character). Literals may span
  lines.
- Numbers: ``13``, ``0.5``, ``.5``. No exponent, no trailing dot. A leading minus is the unary minus operator,
  folded into the literal by the parser, so ``-5`` and ``[a] < -5`` work.
- Operators ``= == <> != < > <= >= + - * /``; ``==`` is normalised to ``=`` and ``!=`` to ``<>``.
- Keywords ``and``, ``or``, ``not`` in any letter case; function names in any letter case (lower-cased).
- ``(``, ``)``, ``,`` and any whitespace between tokens.

``&&``, ``||`` and ``!`` are JavaScript, not REDCap: they are rejected with a message naming the REDCap keyword.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from oncofhir.logic.errors import LogicSyntaxError


class TokenKind(enum.Enum):
    """What a token is; the parser dispatches on this."""

    FIELD = "field"
    STRING = "string"
    NUMBER = "number"
    NAME = "name"
    AND = "and"
    OR = "or"
    NOT = "not"
    OP = "operator"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    """One lexeme.

    ``text`` is the exact source slice (for error messages); ``value`` is the normalised meaning: the column name of
    a field, the content of a string, the float of a number, the lower-cased name, the canonical operator.
    """

    kind: TokenKind
    text: str
    position: int
    value: str | float | None = None

    def describe(self) -> str:
        """How to name this token in an error message (``unexpected <describe()>``)."""
        if self.kind is TokenKind.END:
            return "end of expression"
        if self.kind in (TokenKind.STRING, TokenKind.NUMBER, TokenKind.FIELD):
            return f"{self.kind.value} {self.text}"
        return f"'{self.text}'"


_FIELD = re.compile(r"\[([A-Za-z0-9_]+)(?:\(([A-Za-z0-9_.\-]+)\))?\]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATOR_RUN = re.compile(r"[<>=!&|]+")
_CHECKBOX_CODE_UNSAFE = re.compile(r"[.\-]")

_OPERATORS = {"=": "=", "==": "=", "<>": "<>", "!=": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_NOT_REDCAP = {"&&": "and", "||": "or", "!": "not"}
_KEYWORDS = {"and": TokenKind.AND, "or": TokenKind.OR, "not": TokenKind.NOT}
_SINGLE = {"(": TokenKind.LPAREN, ")": TokenKind.RPAREN, ",": TokenKind.COMMA}


def checkbox_column(name: str, code: str) -> str:
    """The export column of checkbox choice ``code`` of field ``name`` (REDCap's ``name___code`` convention)."""
    return f"{name.lower()}___{_CHECKBOX_CODE_UNSAFE.sub('_', code.lower())}"


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an ``END`` token positioned at ``len(source)``.

    Raises :class:`LogicSyntaxError` for unterminated strings or field references, malformed field references,
    unknown operators, JavaScript operators and characters that belong to no token.
    """
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char.isspace():
            i += 1
            continue
        if char == "[":
            token = _field(source, i)
        elif char in "'\"":
            token = _string(source, i)
        elif (match := _NUMBER.match(source, i)) is not None:
            token = Token(TokenKind.NUMBER, match.group(), i, float(match.group()))
        elif (match := _NAME.match(source, i)) is not None:
            word = match.group().lower()
            token = Token(_KEYWORDS.get(word, TokenKind.NAME), match.group(), i, word)
        elif (match := _OPERATOR_RUN.match(source, i)) is not None:
            token = _operator(source, match.group(), i)
        elif char in "+-*/":
            token = Token(TokenKind.OP, char, i, char)
        elif char in _SINGLE:
            token = Token(_SINGLE[char], char, i)
        else:
            raise LogicSyntaxError(f"unexpected character '{char}'", source, i)
        tokens.append(token)
        i += len(token.text)
    tokens.append(Token(TokenKind.END, "", n))
    return tokens


def _field(source: str, start: int) -> Token:
    """Lex a ``[name]`` or ``[name(code)]`` reference starting at ``start`` (which holds ``[``)."""
    match = _FIELD.match(source, start)
    if match is not None:
        name, code = match.group(1), match.group(2)
        column = name.lower() if code is None else checkbox_column(name, code)
        return Token(TokenKind.FIELD, match.group(), start, column)
    close = source.find("]", start + 1)
    reopen = source.find("[", start + 1)
    if close == -1 or (reopen != -1 and reopen < close):
        raise LogicSyntaxError("'[' without closing ']'", source, start)
    raise LogicSyntaxError(
        f"invalid field reference '{source[start : close + 1]}': expected [name] or [name(code)] "
        "with letters, digits and '_' only",
        source,
        start,
    )


def _string(source: str, start: int) -> Token:
    """Lex a quoted literal starting at ``start``; a doubled quote inside stands for one quote character."""
    quote = source[start]
    parts: list[str] = []
    i = start + 1
    while True:
        close = source.find(quote, i)
        if close == -1:
            raise LogicSyntaxError(f"unterminated string, no closing {quote}", source, start)
        parts.append(source[i:close])
        if source.startswith(quote, close + 1):
            parts.append(quote)
            i = close + 2
            continue
        return Token(TokenKind.STRING, source[start : close + 1], start, "".join(parts))


def _operator(source: str, run: str, start: int) -> Token:
    """Classify a run of ``<>=!&|`` characters as one comparison operator, or reject it."""
    if run in _OPERATORS:
        return Token(TokenKind.OP, run, start, _OPERATORS[run])
    if run in _NOT_REDCAP:
        raise LogicSyntaxError(f"'{run}' is not REDCap logic, use '{_NOT_REDCAP[run]}'", source, start)
    raise LogicSyntaxError(f"unknown operator '{run}'", source, start)
