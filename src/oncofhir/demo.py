"""Seeded synthetic REDCap exports for every use case: the demo data and the benchmarks' input.

Realistic on purpose: hashed record ids, REDCap's export layout (``redcap_data_access_group``,
``<form>_complete``), branching logic respected, blanks, and a small rate of the defects real exports carry
(out-of-range numbers, decimal commas, codes outside the choices, a duplicated record id, a blank id), so that
every stage shows what it does with them. Same seed, use case and center -> byte-identical file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .defects import Injected, Oracle
from .defects import inject as inject_defects
from .dictionary.compiled import CompiledDictionary, Field, Rule, load_compiled
from .io_utils import DIR_MODE, write_private
from .logic import parse

# Plausible ranges for numeric fields without validation min/max, by name fragment.
_RANGES = {
    "age": (25, 90),
    "dur": (1, 36),
    "dose": (10, 200),
    "preg": (0, 5),
    "lymph": (0, 30),
    "ln": (0, 12),
    "dfs": (1, 120),
    "os": (1, 120),
    "neoadj": (1, 8),
}
_PERCENT = ("er", "pr", "ki67")


#: What the demo injects by default at known cells, so its QC pages show the cross-variable checks: each class only
#: where the dictionary has a place for it (none of the five codebooks has a calculated field, for instance).
DEMO_INJECT: dict[str, int] = {"rule_violation": 3, "temporal": 2, "calc_mismatch": 2}
#: Defects of the pool checks (docs/qc.md#pool-checks) the demo injects by default, by center: an outlier and a
#: patient entered twice in hospital_a, hospital_a's patient entered again in hospital_b, and a hospital_c coding
#: every 'unknown' of one variable as 'no'. Centers with other names get none.
POOL_DEFECTS: dict[str, str] = {
    "outlier": "hospital_a",
    "duplicate": "hospital_a",
    "cross_duplicate": "hospital_b",
    "recoded": "hospital_c",
}
#: The center whose record hospital_b's cross-center duplicate copies.
CROSS_SOURCE = "hospital_a"
#: An injected outlier is the variable's demo maximum times this (robust z far above any threshold).
OUTLIER_FACTOR = 20


#: Repair passes that re-draw values breaking the mapping's rules (a random walk that converges in a few).
REPAIR_PASSES = 60


def number_range(f: Field) -> tuple[float, float]:
    """The range the demo draws ``f``'s numbers from: its validation min/max, else a plausible one by name."""
    if f.min and f.max:
        return float(f.min), float(f.max)
    name = f.name
    if any(name == p or name.startswith(p + "_") for p in _PERCENT):
        return 0, 100
    for frag, rng in _RANGES.items():
        if frag in name:
            return rng
    return 0, 50


_range = number_range


def _value(f: Field, rng: random.Random) -> str:
    if f.choices:
        return rng.choice(list(f.choices))
    if f.datatype in {"integer", "number"}:
        lo, hi = _range(f)
        if f.datatype == "integer":
            return str(rng.randint(int(lo), int(hi)))
        return str(round(rng.uniform(lo, hi), 1)) if rng.random() < 0.5 else str(rng.randint(int(lo), int(hi)))
    return f"text {rng.randint(1, 999)}"


def clean_value(f: Field, rng: random.Random) -> str:
    """A valid value for ``f`` (receptor percentages are often near 0, as in real cohorts)."""
    name = f.name
    if f.datatype == "number" and any(name == p or name.startswith(p + "_") for p in _PERCENT) and rng.random() < 0.35:
        return str(rng.randint(0, 5))
    return _value(f, rng)


def _defect(f: Field, rng: random.Random) -> str:
    """A realistic wrong value for ``f``."""
    if f.choices:
        return (
            str(max(int(c) for c in f.choices if c.lstrip("-").isdigit()) + rng.randint(1, 5))
            if any(c.isdigit() for c in f.choices)
            else "?"
        )
    if f.datatype in {"integer", "number"}:
        hi = _range(f)[1]
        return rng.choice([str(int(hi) + rng.randint(10, 60)), f"{rng.randint(1, 9)},5", "n/a", "-3"])
    return ""


def generate(
    dd: CompiledDictionary,
    center: str,
    records: int,
    seed: int,
    *,
    defects: bool = True,
    defect_rate: float = 0.02,
    inject: Mapping[str, int] | None = None,
    pool_defects: Mapping[str, str] | None = POOL_DEFECTS,
) -> str:
    """The CSV text of one center's export (:func:`generate_export` without the list of injected defects)."""
    return generate_export(
        dd, center, records, seed, defects=defects, defect_rate=defect_rate, inject=inject, pool_defects=pool_defects
    )[0]


def generate_export(
    dd: CompiledDictionary,
    center: str,
    records: int,
    seed: int,
    *,
    defects: bool = True,
    defect_rate: float = 0.02,
    inject: Mapping[str, int] | None = None,
    pool_defects: Mapping[str, str] | None = POOL_DEFECTS,
) -> tuple[str, list[Injected]]:
    """The CSV text of one center's export and the defects injected at known cells.

    ``defects=True`` (the demo): blanks, ``defect_rate`` (~2 %) wrong values, a duplicated and a blank record id,
    ``inject`` (default :data:`DEMO_INJECT`) known defects, and the pool checks' defects ``pool_defects`` assigns
    to this center (:func:`inject_pool_defects`; None or {}: none). ``defects=False``: a clean export QC finds
    nothing wrong with (every required value present, every value valid, the mapping's rules met), into which
    ``inject`` (default none) puts known defects (:mod:`oncofhir.defects`, the recall benchmark); no pool defect.
    Values breaking a mapping rule are re-drawn in both modes, so a rule failure in the demo is one the generator
    put there.
    """
    rows, header, fields, injected = _rows(dd, center, records, seed, defects, defect_rate, inject)
    if defects and pool_defects:

        def source() -> tuple[list[list[str]], set[str]]:
            copied = _rows(dd, CROSS_SOURCE, records, seed, defects, defect_rate, inject)
            return copied[0], {i.record_id for i in copied[3]}

        inject_pool_defects(dd, center, rows, fields, pool_defects, source, {i.record_id for i in injected})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if center.endswith("_b") else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" if center.endswith("_b") else "") + out.getvalue(), injected


def _rows(
    dd: CompiledDictionary,
    center: str,
    records: int,
    seed: int,
    defects: bool,
    defect_rate: float,
    inject: Mapping[str, int] | None,
) -> tuple[list[list[str]], list[str], list[Field], list[Injected]]:
    """The export's rows (record id first, then the DAG, the fields, calculated fields and the form status), its
    header, the fields and the defects injected at known cells."""
    rng = random.Random(f"{seed}/{dd.use_case}/{center}")
    fields = [f for f in dd.fields.values() if f.type not in {"descriptive", "calc"}]
    calcs = [f for f in dd.fields.values() if f.type == "calc"]
    branching = {f.name: parse(f.branching) for f in fields if f.branching}
    header = [
        fields[0].name,
        "redcap_data_access_group",
        *(f.name for f in fields[1:]),
        *(f.name for f in calcs),
        *dd.complete_columns,
    ]
    recs: list[dict[str, str]] = []
    completes: list[str] = []
    for i in range(records):
        rid = hashlib.sha256(f"{seed}/{dd.use_case}/{center}/{i}".encode()).hexdigest()[:16]
        rec: dict[str, str] = {fields[0].name: rid}
        sparse = defects and rng.random() < 0.1  # some records are barely filled in
        for f in fields[1:]:
            expr = branching.get(f.name)
            if expr is not None and not expr.evaluate_record(rec):
                rec[f.name] = ""
                continue
            if not defects:
                rec[f.name] = "" if f.level == "recommended" and rng.random() < 0.3 else clean_value(f, rng)
                continue
            blank_rate = 0.6 if sparse else (0.05 if f.level == "minimal" else 0.15 if f.level == "mandatory" else 0.3)
            if rng.random() < blank_rate:
                rec[f.name] = ""
            elif rng.random() < defect_rate:
                rec[f.name] = _defect(f, rng)
            else:
                rec[f.name] = _value(f, rng) if not dd.rules else clean_value(f, rng)
        for f in calcs:
            rec[f.name] = ""
        completes.append(rng.choices(["2", "1", "0"], weights=[85, 10, 5])[0])
        recs.append(rec)
    oracle = Oracle(dd)
    if dd.rules:
        _repair(oracle, recs, fields, branching, random.Random(f"{seed}/{dd.use_case}/{center}/rules"), defects)
    for f in calcs:
        for rec in recs:
            rec[f.name] = oracle.calc_value(f, rec)
    counts = dict(DEMO_INJECT if inject is None and defects else inject or {})
    injected = (
        inject_defects(
            oracle, recs, counts, random.Random(f"{seed}/{dd.use_case}/{center}/inject"), record_id=fields[0].name
        )
        if counts
        else []
    )
    rows = [
        [rec[fields[0].name], center, *(rec[f.name] for f in fields[1:]), *(rec[f.name] for f in calcs)]
        + [complete] * len(dd.complete_columns)
        for rec, complete in zip(recs, completes, strict=True)
    ]
    if defects and records >= 10:  # a duplicated record id (a second REDCap row for the same patient) and a blank id
        dup = list(rows[rng.randrange(records)])
        rows.insert(rng.randrange(len(rows)), dup)
        blank = list(rows[rng.randrange(records)])
        blank[0] = ""
        rows.insert(rng.randrange(len(rows)), blank)
    return rows, header, fields, injected


def _repair(
    oracle: Oracle,
    recs: list[dict[str, str]],
    fields: list[Field],
    branching: Mapping[str, Any],
    rng: random.Random,
    clean: bool,
) -> None:
    """Re-draw values that break a mapping rule until every record meets every rule (a random walk over the
    rule's variables; a variable that decides another's branching re-applies it), so the export has only the
    rule failures injected on purpose. Records still breaking a rule after :data:`REPAIR_PASSES` have the rule's
    recommended variables blanked (then the rule does not apply)."""
    by_name = {f.name: f for f in fields}
    dependents: dict[str, list[Field]] = {}
    for f in fields:
        if f.branching:
            for v in parse(f.branching).variables:
                dependents.setdefault(v.split("___", 1)[0], []).append(f)
    rules = oracle.rules
    todo = list(range(len(recs)))
    for _ in range(REPAIR_PASSES):
        states = oracle.rule_states([recs[i] for i in todo])
        broken = states == 2
        todo = [i for i, row in zip(todo, broken, strict=True) if row.any()]
        if not todo:
            return
        for i, row in zip(todo, broken[broken.any(axis=1)], strict=True):
            rule = rules[rng.choice(np.flatnonzero(row).tolist())]
            options = [v for v in rule.variables if v in by_name and v != fields[0].name and recs[i][v] != ""]
            if not options:
                continue
            var = rng.choice(options)
            recs[i][var] = clean_value(by_name[var], rng)
            _rebranch(recs[i], var, dependents, branching, rng, clean)
    states = oracle.rule_states([recs[i] for i in todo])
    for i, row in zip(todo, states, strict=True):
        if (row == 2).any():
            _settle(oracle, recs[i], [rules[k] for k in np.flatnonzero(row == 2).tolist()], by_name)


def _settle(oracle: Oracle, rec: dict[str, str], broken: list[Rule], by_name: Mapping[str, Field]) -> None:
    """Last resort for a record the random walk left breaking a rule: try every code of each coded variable of the
    broken rules, then blank their recommended variables, keeping the first change that breaks no rule."""
    for rule in broken:
        for v in rule.variables:
            f = by_name.get(v)
            if f is None or not f.choices or not rec[v]:
                continue
            old = rec[v]
            for code in f.choices:
                rec[v] = code
                if not (oracle.rule_states([rec])[0] == 2).any():
                    return
            rec[v] = old
    for rule in broken:
        for v in rule.variables:
            if v in by_name and by_name[v].level == "recommended":
                rec[v] = ""


def _rebranch(
    rec: dict[str, str],
    changed: str,
    dependents: Mapping[str, list[Field]],
    branching: Mapping[str, Any],
    rng: random.Random,
    clean: bool,
) -> None:
    """Re-apply the branching logic of the fields ``changed`` decides (and of those they decide in turn)."""
    queue = [changed]
    while queue:
        var = queue.pop()
        for f in dependents.get(var, []):
            shown = branching[f.name].evaluate_record(rec)
            old = rec[f.name]
            if not shown:
                rec[f.name] = ""
            elif not old and (clean or f.level != "recommended"):
                rec[f.name] = clean_value(f, rng)
            if rec[f.name] != old:
                queue.append(f.name)


# ---- Pool-check defects (issue #15): outlier, duplicate patient, recoded center. Deterministic: each is placed
# by rule, not by chance, so a test knows exactly what to find.


def inject_pool_defects(
    dd: CompiledDictionary,
    center: str,
    rows: list[list[str]],
    fields: list[Field],
    defects: Mapping[str, str],
    source: Callable[[], tuple[list[list[str]], set[str]]],
    protected: Collection[str] = (),
) -> list[str]:
    """Apply the defects ``defects`` (kind -> center) assigns to ``center``; returns what was injected.

    A copied patient is the first (within the center) or the last (across centers) record with enough duplicate
    keys filled in; both are reserved, so no other injection changes them and the copy stays a copy. The copies
    overwrite the last records (their ids kept: the same patient under another id), the outlier the first free one.
    Records in ``protected`` (those holding a defect injected at a known cell: :mod:`oncofhir.defects`) are neither
    copied nor overwritten, and the outlier and the recoded variable are ones no mapping rule names, so each pool
    defect is found by its own check only.
    """
    done = []
    column = {f.name: k for k, f in enumerate(fields)}
    usable = keyed_rows(dd, rows, column, protected)
    reserved = {usable[0], usable[-1]} if usable else set()
    free = [k for k in _unique_rows(rows, protected) if k not in reserved]
    avoid = rule_variables(dd)
    if defects.get("duplicate") == center and usable and len(free) > 1:
        rows[free.pop()][2:] = list(rows[usable[0]][2:])
        done.append("duplicate")
    if defects.get("cross_duplicate") == center and center != CROSS_SOURCE and len(free) > 1:
        copied, injected = source()  # CROSS_SOURCE's rows, as its own export has them
        others = keyed_rows(dd, copied, column, injected)
        if others:
            rows[free.pop()][2:] = list(copied[others[-1]][2:])
            done.append("cross_duplicate")
    f = outlier_field(fields, avoid)
    if defects.get("outlier") == center and f is not None and free:
        rows[free[0]][_cell(f.name, column)] = str(int(_range(f)[1] * OUTLIER_FACTOR) + 1)
        done.append("outlier")
    if defects.get("recoded") == center and recode_unknown_as_no(rows, fields, column, avoid):
        done.append("recoded")
    return done


def rule_variables(dd: CompiledDictionary) -> set[str]:
    """Every variable a mapping rule names: the pool defects leave them alone."""
    return {v for rule in dd.rules for v in rule.variables}


def _cell(name: str, column: dict[str, int]) -> int:
    """The row cell of a field (the DAG column sits after the record id)."""
    return 0 if column[name] == 0 else column[name] + 1


def outlier_field(fields: list[Field], avoid: Collection[str] = ()) -> Field | None:
    """The variable that gets the outlier: the first number without validation limits or branching logic (so no
    other check catches it: only the pool's outlier check), else the first number without branching; never one
    in ``avoid`` (the variables of the mapping's rules, which a far value could break)."""
    numbers = [f for f in fields[1:] if f.datatype in {"integer", "number"} and not f.branching and f.name not in avoid]
    free = [f for f in numbers if not f.min and not f.max]
    return (free or numbers or [None])[0]


def _unique_rows(rows: list[list[str]], protected: Collection[str] = ()) -> list[int]:
    """Indexes of rows whose record id is not blank and occurs once (ingest keeps exactly those), but not in
    ``protected``."""
    counts = Counter(r[0] for r in rows)
    return [k for k, r in enumerate(rows) if r[0] and counts[r[0]] == 1 and r[0] not in protected]


def keyed_rows(
    dd: CompiledDictionary,
    rows: list[list[str]],
    column: dict[str, int],
    protected: Collection[str] = (),
) -> list[int]:
    """Rows ingest keeps that have enough duplicate keys filled in to be compared (mapping.yaml ``duplicates``)."""
    spec = dd.duplicates or {}
    keys = list(spec.get("keys", []))
    if not keys:
        return []
    need = int(spec.get("min_filled", len(keys)))
    return [k for k in _unique_rows(rows, protected) if sum(rows[k][_cell(n, column)] != "" for n in keys) >= need]


def recoded_field(fields: list[Field], avoid: Collection[str] = ()) -> tuple[Field, str, str] | None:
    """The variable the recoded center codes differently: the first without branching logic, not in ``avoid`` (the
    mapping's rules' variables), whose choices include 'no' and 'unknown' (labels), with those two codes."""
    for f in fields[1:]:
        if f.branching or f.type == "checkbox" or f.name in avoid:
            continue
        by_label = {label.strip().lower(): code for code, label in f.choices.items()}
        if "no" in by_label and "unknown" in by_label:
            return f, by_label["unknown"], by_label["no"]
    return None


def recode_unknown_as_no(
    rows: list[list[str]],
    fields: list[Field],
    column: dict[str, int],
    avoid: Collection[str] = (),
) -> bool:
    """Every 'unknown' of :func:`recoded_field` entered as 'no'."""
    found = recoded_field(fields, avoid)
    if found is None:
        return False
    f, unknown, no = found
    cell = _cell(f.name, column)
    for row in rows:
        if row[cell] == unknown:
            row[cell] = no
    return True


def write_center_export(compiled_json: str | Path, out: str | Path, *, center: str, records: int, seed: int) -> int:
    """Write one demo export (center ``*_b`` gets a BOM and CRLF, as Excel-saved REDCap exports do)."""
    dd = load_compiled(compiled_json)
    text = generate(dd, center, records, seed)
    write_private(out, text.encode("utf-8"))  # synthetic, but shaped like patient data: treated like it
    folder = Path(out).parent  # <demo folder>/<use case>/, made by Snakemake with the umask's 0755
    if folder.resolve() != Path.cwd().resolve() and folder.stat().st_uid == os.geteuid():
        os.chmod(folder, DIR_MODE)
    return records


def write_demo(
    dictionaries: str | Path, out: str | Path, *, seed: int, records: int, centers: int
) -> list[tuple[str, int]]:
    """Compile every use case under ``dictionaries`` and write ``centers`` demo exports for each."""
    from .dictionary import compile_dictionary

    written = []
    root = Path(dictionaries)
    ontologies = root.parent / "ontologies"
    for folder in sorted(p for p in root.iterdir() if (p / "mapping.yaml").exists()):
        dd = compile_dictionary(folder, ontologies)
        for k in range(centers):
            center = f"hospital_{chr(ord('a') + k)}"
            path = Path(out) / dd.use_case / f"{center}.csv"
            write_private(path, generate(dd, center, records, seed).encode("utf-8"))  # as the rule: 0600, 0700
            written.append((str(path), records))
    return written
