"""UCUM unit-expression syntax (the "case sensitive" grammar of the UCUM specification, section 2).

A unit code is valid when it parses as a term of components (``.`` and ``/``), each a prefixed or plain atom with
an optional integer exponent, a positive integer factor, a parenthesised term, or an annotation in braces; prefixes
only combine with metric atoms. The atom and prefix symbols come from ``ucum-essence.xml`` (vendored as
resources/fhir/ucum.json). Parsing is memoised per code: a center uses a handful of units.
"""

from __future__ import annotations

from functools import lru_cache

_ANNOTATION_CHARS = frozenset(chr(c) for c in range(33, 127)) - {"{", "}"}


class Ucum:
    """A parser bound to one UCUM table."""

    def __init__(self, table: dict[str, object]) -> None:
        atoms = table["atoms"]
        assert isinstance(atoms, dict)
        self.atoms: dict[str, bool] = {str(k): bool(v) for k, v in atoms.items()}
        self.prefixes: tuple[str, ...] = tuple(str(p) for p in table["prefixes"])  # type: ignore[union-attr]
        self.version = str(table.get("version", ""))
        self.valid = lru_cache(maxsize=4096)(self._valid)

    def _valid(self, code: str) -> bool:
        """True when ``code`` is a syntactically valid UCUM expression made of known symbols."""
        if not code or any(c.isspace() for c in code):
            return False
        start = 1 if code.startswith("/") else 0
        return len(code) in self._term(code, start)

    # Each parse function returns every end position reachable from ``pos`` (the grammar needs backtracking:
    # "mg" is milli-gram, "cd" is candela, "[ppm]" is an atom containing letters a prefix could start).
    def _term(self, s: str, pos: int) -> set[int]:
        ends = set()
        frontier = self._component(s, pos)
        while frontier:
            ends |= frontier
            nxt = set()
            for end in frontier:
                if end < len(s) and s[end] in "./":
                    nxt |= self._component(s, end + 1) - ends
            frontier = nxt
        return ends

    def _component(self, s: str, pos: int) -> set[int]:
        ends: set[int] = set()
        if pos >= len(s):
            return ends
        if s[pos] == "(":
            for end in self._term(s, pos + 1):
                if end < len(s) and s[end] == ")":
                    ends |= self._annotated(s, end + 1)
            return ends
        if s[pos] == "{":
            return self._annotation(s, pos)
        digits = pos
        while digits < len(s) and s[digits].isdigit():
            digits += 1
        if digits > pos and (digits == len(s) or s[digits] in "./){"):
            ends |= self._annotated(s, digits)  # a factor
        for end in self._simple(s, pos):
            exp = end
            if exp < len(s) and s[exp] in "+-":
                exp += 1
            digit_end = exp
            while digit_end < len(s) and s[digit_end].isdigit():
                digit_end += 1
            if digit_end > exp:
                ends |= self._annotated(s, digit_end)
            if exp == end:
                ends |= self._annotated(s, end)
        return ends

    def _annotated(self, s: str, pos: int) -> set[int]:
        return {pos} | (self._annotation(s, pos) if pos < len(s) and s[pos] == "{" else set())

    @staticmethod
    def _annotation(s: str, pos: int) -> set[int]:
        close = s.find("}", pos + 1)
        if close < 0 or any(c not in _ANNOTATION_CHARS for c in s[pos + 1 : close]):
            return set()
        return {close + 1}

    def _simple(self, s: str, pos: int) -> set[int]:
        ends = set()
        for atom in self.atoms:
            if s.startswith(atom, pos):
                ends.add(pos + len(atom))
        for prefix in self.prefixes:
            if s.startswith(prefix, pos):
                after = pos + len(prefix)
                for atom, metric in self.atoms.items():
                    if metric and s.startswith(atom, after):
                        ends.add(after + len(atom))
        return ends
