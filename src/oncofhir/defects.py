"""Known defects injected into synthetic records at known cells: the demo shows them, the recall benchmark counts
how many QC finds (``benchmarks/bench_qc_recall.py``).

A small registry, one function per defect class (:data:`DEFECTS`, filled by :func:`defect`), so a class added later
(an outlier, a duplicate patient, a recoded center) is one more decorated function. An injector gets one record
(a dict of export values, already clean) and changes it so that it carries exactly one defect of its class, or
returns ``None`` when the record offers no place for one. It returns the variable it changed and the QC check that
must flag it (``<variable>.<type>`` or a rule id).

"Exactly one defect" is decided by :class:`Oracle`, the generator's own reading of the dictionary (visibility by
branching logic, requirement conditions, the mapping's rules through the REDCap logic engine), not by running QC:
an injection that would also hide or require another field, or break a second rule, is not made. Which values
conform (an integer, a code) is decided by the rules QC uses, from the one module both read
(:mod:`oncofhir.redcap_values`, outside the QC package so that the demo stage does not depend on all of QC).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .dictionary.compiled import CompiledDictionary, Field, Rule
from .logic import parse
from .redcap_values import codes_of, date_format, is_date, is_integer, is_number, number_or_nan

Record = dict[str, str]


@dataclass(frozen=True, slots=True)
class Injected:
    """One injected defect: which record (0-based position in the generated records and its id), its class, the
    variable changed, the value written and the QC check that must flag it."""

    index: int
    record_id: str
    kind: str
    variable: str
    value: str
    check: str


Injector = Callable[["Oracle", Record, random.Random], tuple[str, str] | None]

#: Defect class -> injector, in registration order. Each class's checks (:data:`CLASS_TYPES`) are what QC claims.
DEFECTS: dict[str, Injector] = {}
#: Defect class -> the QC check types that must flag it (the recall benchmark's precision counts these types).
CLASS_TYPES: dict[str, tuple[str, ...]] = {}


def defect(name: str, types: tuple[str, ...]) -> Callable[[Injector], Injector]:
    """Register an injector for the defect class ``name``, flagged by QC checks of ``types``."""

    def register(func: Injector) -> Injector:
        DEFECTS[name] = func
        CLASS_TYPES[name] = types
        return func

    return register


def conforms(f: Field, value: str) -> bool:
    """Whether a non-blank ``value`` is of ``f``'s type and, for a coded field, one of its codes."""
    if f.choices:
        return all(c in f.choices for c in codes_of(value, f.type == "checkbox"))
    if f.datatype == "integer":
        return is_integer(value)
    if f.datatype == "number":
        return is_number(value)
    if f.datatype == "date":
        return is_date(value, date_format(f.validation))
    return True


class Oracle:
    """The generator's reading of one dictionary, vectorised over records (lists of dicts)."""

    def __init__(self, dd: CompiledDictionary) -> None:
        self.dd = dd
        self.fields = [f for f in dd.fields.values() if f.type not in {"descriptive"}]
        self.by_name = {f.name: f for f in self.fields}
        self.rules = list(dd.rules)
        self.calcs = [f for f in self.fields if f.type == "calc" and f.calculation]
        #: The fields the rules read: only their visibility and conformance matter to :meth:`rule_states`.
        self.rule_fields = [f for f in self.fields if any(f.name in r.variables for r in self.rules)]
        self._conforms: dict[tuple[str, str], bool] = {}

    @staticmethod
    def columns(recs: Sequence[Record]) -> dict[str, NDArray[np.object_]]:
        """The records column-wise (what the logic engine evaluates)."""
        names = recs[0].keys() if recs else []
        out = {}
        for name in names:
            col = np.empty(len(recs), dtype=object)
            col[:] = [r[name] for r in recs]
            out[name] = col
        return out

    def visible(
        self, cols: Mapping[str, Any], n: int, fields: Sequence[Field] | None = None
    ) -> dict[str, NDArray[np.bool_]]:
        """Per field (default: all): shown by its branching logic."""
        yes = np.ones(n, dtype=bool)
        chosen = self.fields if fields is None else fields
        return {f.name: parse(f.branching).evaluate(cols, n_rows=n) if f.branching else yes for f in chosen}

    def usable(self, cols: Mapping[str, Any], n: int, visible: Mapping[str, NDArray[np.bool_]]) -> dict[str, Any]:
        """Per field the rules read: shown, not blank and conforming (what a rule reads)."""
        out = {}
        memo = self._conforms
        for f in self.rule_fields:
            flags = []
            for v in cols[f.name].tolist():
                key = (f.name, v)
                hit = memo.get(key)
                if hit is None:
                    hit = memo[key] = v != "" and conforms(f, v)
                flags.append(hit)
            out[f.name] = np.array(flags, dtype=bool) & visible[f.name]
        return out

    def rule_states(self, recs: Sequence[Record]) -> NDArray[np.int8]:
        """Records x rules: 0 not applicable, 1 holds, 2 broken (QC's rule semantics, docs/qc.md)."""
        n = len(recs)
        out = np.zeros((n, len(self.rules)), dtype=np.int8)
        if not n or not self.rules:
            return out
        cols = self.columns(recs)
        visible = self.visible(cols, n, self.rule_fields)
        usable = self.usable(cols, n, visible)
        for k, rule in enumerate(self.rules):
            applies, holds = self._rule(rule, cols, n, usable)
            out[:, k] = applies * (2 - holds.astype(np.int8))
        return out

    def _rule(self, rule: Rule, cols: Mapping[str, Any], n: int, usable: Mapping[str, Any]) -> tuple[Any, Any]:
        applies = np.ones(n, dtype=bool)
        if rule.when:
            applies &= parse(rule.when).evaluate(cols, n_rows=n)
        if rule.if_blank == "skip":
            for v in rule.variables:
                applies &= usable[v]
        if rule.type == "computed":
            computed = parse(rule.assert_).evaluate_values(cols, n_rows=n)
            given = [c != "" and c is not None for c in computed.tolist()]
            applies &= np.array(given, dtype=bool)
            holds = np.array([same_number(s, c) for s, c in zip(cols[rule.variable], computed, strict=True)])
            return applies, holds
        return applies, parse(rule.assert_).evaluate(cols, n_rows=n)

    def structure(self, rec: Record) -> tuple[Any, ...]:
        """What must not change when one defect is injected: every field's visibility and which requirement applies,
        and every calculation's value."""
        cols = self.columns([rec])
        visible = self.visible(cols, 1)
        parts: list[Any] = []
        for f in self.fields:
            parts.append(bool(visible[f.name][0]))
            parts.append(self.requirement(f, rec, cols))
        for f in self.calcs:
            parts.append(str(parse(f.calculation).evaluate_values(cols, n_rows=1)[0]))
        return tuple(parts)

    def requirement(self, f: Field, rec: Record, cols: Mapping[str, Any] | None = None) -> str:
        """The requirement check that applies to ``f`` in ``rec`` (as QC decides it), or ``""``."""
        cols = cols if cols is not None else self.columns([rec])
        if f.branching and not parse(f.branching).evaluate(cols, n_rows=1)[0]:
            return ""
        minimal = f.minimal is True or (isinstance(f.minimal, str) and bool(parse(f.minimal).evaluate(cols)[0]))
        if minimal:
            return "minimal_req"
        if f.minimal is True or f.mandatory is False or f.mandatory == f.minimal:
            return ""
        if f.mandatory is True or bool(parse(f.mandatory).evaluate(cols)[0]):
            return "mandatory_req"
        return ""

    def calc_value(self, f: Field, rec: Record) -> str:
        """A calc field's value as REDCap exports it (``''`` when an input is blank)."""
        value = parse(f.calculation).evaluate_values(self.columns([rec]), n_rows=1)[0]
        return spell(value)


def spell(value: Any) -> str:
    """A computed value as an export writes it: numbers without a spurious ``.0``, up to 10 significant digits."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if not np.isfinite(value):
            return ""
        return f"{value:.10g}"
    return str(value)


def same_number(stored: str, computed: Any) -> bool:
    """Whether ``stored`` holds ``computed`` (numbers numerically, anything else as text)."""
    if isinstance(computed, int | float) and not isinstance(computed, bool):
        x = number_or_nan(stored)
        return not np.isnan(x) and abs(x - float(computed)) <= 1e-9 * max(1.0, abs(float(computed)))
    return stored == spell(computed)


def _one_change(
    oracle: Oracle, rec: Record, variable: str, candidates: Sequence[str], accept: Callable[[Record], bool]
) -> str | None:
    """Try ``candidates`` for ``rec[variable]``; keep the first that leaves the record's structure (visibility,
    requirements, calculations) as it was and passes ``accept``. Returns the value kept, or ``None`` (``rec`` is
    unchanged then)."""
    before = oracle.structure(rec)
    old = rec[variable]
    for value in candidates:
        if value == old:
            continue
        rec[variable] = value
        if oracle.structure(rec) == before and accept(rec):
            return value
    rec[variable] = old
    return None


def _rules_unchanged(oracle: Oracle, rec: Record) -> Callable[[Record], bool]:
    """An ``accept`` test: no rule changes state (none breaks, none stops applying)."""
    before = oracle.rule_states([rec])[0].copy()
    return lambda r: bool((oracle.rule_states([r])[0] == before).all())


def _shuffled(items: Sequence[Any], rng: random.Random) -> list[Any]:
    out = list(items)
    rng.shuffle(out)
    return out


@defect("blank_required", ("minimal_req", "mandatory_req"))
def blank_required(oracle: Oracle, rec: Record, rng: random.Random) -> tuple[str, str] | None:
    """A required value (minimal or mandatory, its condition holding) left blank."""
    for f in _shuffled(oracle.fields[1:], rng):
        kind = oracle.requirement(f, rec)
        if not kind or not rec[f.name]:
            continue
        if _one_change(oracle, rec, f.name, [""], _rules_unchanged(oracle, rec)) is not None:
            return f.name, f"{f.name}.{kind}"
    return None


@defect("wrong_type", ("datatype",))
def wrong_type(oracle: Oracle, rec: Record, rng: random.Random) -> tuple[str, str] | None:
    """A number field holding text (``n/a``, a decimal comma)."""
    for f in _shuffled([f for f in oracle.fields if f.datatype in {"integer", "number"}], rng):
        if not rec[f.name]:
            continue
        bad = rng.choice(["n/a", "12,5", "unknown", "5 mg"])
        if _one_change(oracle, rec, f.name, [bad], _rules_unchanged(oracle, rec)) is not None:
            return f.name, f"{f.name}.datatype"
    return None


@defect("invalid_code", ("permissible",))
def invalid_code(oracle: Oracle, rec: Record, rng: random.Random) -> tuple[str, str] | None:
    """A coded field holding an integer that is not one of its codes."""
    coded = [f for f in oracle.fields if f.choices and f.type != "checkbox" and all(is_integer(c) for c in f.choices)]
    for f in _shuffled(coded, rng):
        if not rec[f.name]:
            continue
        bad = str(max(int(c) for c in f.choices) + rng.randint(1, 5))
        if _one_change(oracle, rec, f.name, [bad], _rules_unchanged(oracle, rec)) is not None:
            return f.name, f"{f.name}.permissible"
    return None


@defect("out_of_range", ("range",))
def out_of_range(oracle: Oracle, rec: Record, rng: random.Random) -> tuple[str, str] | None:
    """A number beyond its field's validation min or max."""
    ranged = [f for f in oracle.fields if f.datatype in {"integer", "number"} and (f.min or f.max)]
    for f in _shuffled(ranged, rng):
        if not rec[f.name]:
            continue
        lo, hi = number_or_nan(f.min), number_or_nan(f.max)
        options = []
        if not np.isnan(hi):
            options.append(str(int(hi) + rng.randint(1, 40)))
        if not np.isnan(lo):
            options.append(str(int(lo) - rng.randint(1, 40)))
        if _one_change(oracle, rec, f.name, _shuffled(options, rng), _rules_unchanged(oracle, rec)) is not None:
            return f.name, f"{f.name}.range"
    return None


@defect("hidden_value", ("branching",))
def hidden_value(oracle: Oracle, rec: Record, rng: random.Random) -> tuple[str, str] | None:
    """A value in a field the record's own answers hide."""
    from .demo import clean_value

    for f in _shuffled([f for f in oracle.fields if f.branching and f.type != "calc"], rng):
        if rec[f.name]:
            continue
        cols = oracle.columns([rec])
        if parse(f.branching).evaluate(cols, n_rows=1)[0]:
            continue
        value = clean_value(f, rng)
        if _one_change(oracle, rec, f.name, [value], _rules_unchanged(oracle, rec)) is not None:
            return f.name, f"{f.name}.branching"
    return None


def _number_candidates(f: Field, rec: Record, rule: Rule, rng: random.Random) -> list[str]:
    """Values of ``f``'s type likely to break a comparison: near the other numbers the rule names, 0, negatives."""
    from .demo import number_range

    lo, hi = number_range(f)
    out = [str(rng.randint(int(lo), int(hi))) for _ in range(4)] + ["0", "1", "4", "10", "11", "100"]
    out += [str(-rng.randint(1, 12))]
    for v in rule.variables:
        x = number_or_nan(rec.get(v, ""))
        if not np.isnan(x):
            out += [str(int(x) + d) for d in (1, 2, 5, 12)] + [str(int(x) - d) for d in (1, 3)]
    return _shuffled(out, rng)


def _break_rule(oracle: Oracle, rec: Record, rng: random.Random, category: str) -> tuple[str, str] | None:
    """Change one value so that one rule of ``category`` breaks and nothing else changes."""
    rules = [(k, r) for k, r in enumerate(oracle.rules) if r.category == category and r.type != "computed"]
    states = oracle.rule_states([rec])[0]
    for k, rule in _shuffled(rules, rng):
        if rule.if_blank == "skip" and not all(rec.get(v) for v in rule.variables):
            continue
        wanted = states.copy()
        wanted[k] = 2
        for var in _shuffled(rule.variables, rng):
            f = oracle.by_name[var]
            if f.type == "calc" or not rec[var]:
                continue
            if f.choices:
                candidates = _shuffled(list(f.choices), rng)
            elif f.datatype in {"integer", "number"}:
                candidates = _number_candidates(f, rec, rule, rng)
            else:
                continue
            value = _one_change(
                oracle, rec, var, candidates, lambda r, w=wanted: bool((oracle.rule_states([r])[0] == w).all())
            )
            if value is not None:
                return var, rule.id
    return None


@defect("rule_violation", ("relational",))
def rule_violation(oracle: Oracle, rec: Record, rng: random.Random) -> tuple[str, str] | None:
    """Values each valid alone that break one of the mapping's relational rules (M1 with stage II, ...)."""
    return _break_rule(oracle, rec, rng, "relational")


@defect("temporal", ("temporal",))
def temporal(oracle: Oracle, rec: Record, rng: random.Random) -> tuple[str, str] | None:
    """An interval or date order broken (disease-free survival longer than overall survival, ...)."""
    return _break_rule(oracle, rec, rng, "temporal")


@defect("calc_mismatch", ("computational",))
def calc_mismatch(oracle: Oracle, rec: Record, rng: random.Random) -> tuple[str, str] | None:
    """A calculated field (or a computed rule's variable) whose stored value is not its calculation's."""
    targets: list[tuple[str, str]] = [(f.name, f"{f.name}.computational") for f in oracle.calcs]
    targets += [(r.variable, r.id) for r in oracle.rules if r.type == "computed"]
    for var, check in _shuffled(targets, rng):
        x = number_or_nan(rec.get(var, ""))
        if np.isnan(x):
            continue
        bad = spell(float(x) + rng.choice([1, 2, 5, 10]) * rng.choice([1, -1]))
        rec_old = rec[var]
        rec[var] = bad
        if var in {f.name for f in oracle.calcs}:  # the calculation itself is unchanged: only its stored value
            return var, check
        rec[var] = rec_old
        states = oracle.rule_states([rec])[0]
        k = next(i for i, r in enumerate(oracle.rules) if r.id == check)
        wanted = states.copy()
        wanted[k] = 2
        if _one_change(oracle, rec, var, [bad], lambda r, w=wanted: bool((oracle.rule_states([r])[0] == w).all())):
            return var, check
    return None


def inject(
    oracle: Oracle,
    recs: list[Record],
    counts: Mapping[str, int],
    rng: random.Random,
    *,
    record_id: str,
    avoid: set[int] | None = None,
) -> list[Injected]:
    """Inject ``counts[class]`` defects of each class into distinct records of ``recs`` (in place), at most one
    per record, trying records in a seeded random order; fewer when the records offer no more places."""
    taken = set(avoid or ())
    order = _shuffled(range(len(recs)), rng)
    out: list[Injected] = []
    for kind, count in counts.items():
        injector = DEFECTS[kind]
        made = 0
        for i in order:
            if made >= count:
                break
            if i in taken:
                continue
            hit = injector(oracle, recs[i], rng)
            if hit is None:
                continue
            variable, check = hit
            taken.add(i)
            out.append(Injected(i, recs[i][record_id], kind, variable, recs[i][variable], check))
            made += 1
    return out
