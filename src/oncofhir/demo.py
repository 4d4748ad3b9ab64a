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
from collections.abc import Mapping
from pathlib import Path

from .dictionary.compiled import CompiledDictionary, Field, load_compiled
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


def _range(f: Field) -> tuple[float, float]:
    if f.min and f.max:
        return float(f.min), float(f.max)
    name = f.name
    if any(name == p or name.startswith(p + "_") for p in _PERCENT):
        return 0, 100
    for frag, rng in _RANGES.items():
        if frag in name:
            return rng
    return 0, 50


def _value(f: Field, rng: random.Random) -> str:
    if f.choices:
        return rng.choice(list(f.choices))
    if f.datatype in {"integer", "number"}:
        lo, hi = _range(f)
        if f.datatype == "integer":
            return str(rng.randint(int(lo), int(hi)))
        return str(round(rng.uniform(lo, hi), 1)) if rng.random() < 0.5 else str(rng.randint(int(lo), int(hi)))
    return f"text {rng.randint(1, 999)}"


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
    defect_rate: float = 0.02,
    pool_defects: Mapping[str, str] | None = POOL_DEFECTS,
) -> str:
    """The CSV text of one center's export.

    ``defect_rate``: share of values replaced by a realistic wrong one (0: a clean export). ``pool_defects``: which
    center gets which defect of the pool checks (:func:`inject_pool_defects`; None or {}: none).
    """
    rows, header, fields = _rows(dd, center, records, seed, defect_rate)
    if pool_defects:
        inject_pool_defects(dd, center, rows, fields, pool_defects, records=records, seed=seed, defect_rate=defect_rate)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if center.endswith("_b") else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" if center.endswith("_b") else "") + out.getvalue()


def _rows(
    dd: CompiledDictionary, center: str, records: int, seed: int, defect_rate: float
) -> tuple[list[list[str]], list[str], list[Field]]:
    """The export's rows (record id first, then the DAG, the fields and the form status), header and fields."""
    rng = random.Random(f"{seed}/{dd.use_case}/{center}")
    fields = [f for f in dd.fields.values() if f.type not in {"descriptive", "calc"}]
    branching = {f.name: parse(f.branching) for f in fields if f.branching}
    header = [fields[0].name, "redcap_data_access_group", *(f.name for f in fields[1:]), *dd.complete_columns]
    rows = []
    for i in range(records):
        rid = hashlib.sha256(f"{seed}/{dd.use_case}/{center}/{i}".encode()).hexdigest()[:16]
        rec: dict[str, str] = {fields[0].name: rid}
        sparse = rng.random() < 0.1  # some records are barely filled in
        for f in fields[1:]:
            expr = branching.get(f.name)
            if expr is not None and not expr.evaluate_record(rec):
                rec[f.name] = ""
                continue
            blank_rate = 0.6 if sparse else (0.05 if f.level == "minimal" else 0.15 if f.level == "mandatory" else 0.3)
            if rng.random() < blank_rate:
                rec[f.name] = ""
            elif rng.random() < defect_rate:
                rec[f.name] = _defect(f, rng)
            else:
                rec[f.name] = _value(f, rng)
        complete = rng.choices(["2", "1", "0"], weights=[85, 10, 5])[0]
        rows.append([rid, center, *(rec[f.name] for f in fields[1:]), *([complete] * len(dd.complete_columns))])
    if records >= 10:  # a duplicated record id (a second REDCap row for the same patient) and a blank id
        dup = list(rows[rng.randrange(records)])
        rows.insert(rng.randrange(len(rows)), dup)
        blank = list(rows[rng.randrange(records)])
        blank[0] = ""
        rows.insert(rng.randrange(len(rows)), blank)
    return rows, header, fields


# ---- Pool-check defects (issue #15): outlier, duplicate patient, recoded center. Deterministic: each is placed
# by rule, not by chance, so a test knows exactly what to find.


def inject_pool_defects(
    dd: CompiledDictionary,
    center: str,
    rows: list[list[str]],
    fields: list[Field],
    defects: Mapping[str, str],
    *,
    records: int,
    seed: int,
    defect_rate: float,
) -> list[str]:
    """Apply the defects ``defects`` (kind -> center) assigns to ``center``; returns what was injected.

    A copied patient is the first (within the center) or the last (across centers) record with enough duplicate
    keys filled in; both are reserved, so no other injection changes them and the copy stays a copy. The copies
    overwrite the last records (their ids kept: the same patient under another id), the outlier the first free one.
    """
    done = []
    column = {f.name: k for k, f in enumerate(fields)}
    usable = keyed_rows(dd, rows, column)
    reserved = {usable[0], usable[-1]} if usable else set()
    free = [k for k in _unique_rows(rows) if k not in reserved]
    if defects.get("duplicate") == center and usable and len(free) > 1:
        rows[free.pop()][2:] = list(rows[usable[0]][2:])
        done.append("duplicate")
    if defects.get("cross_duplicate") == center and center != CROSS_SOURCE and len(free) > 1:
        source, _, _ = _rows(dd, CROSS_SOURCE, records, seed, defect_rate)
        others = keyed_rows(dd, source, column)
        if others:
            rows[free.pop()][2:] = list(source[others[-1]][2:])
            done.append("cross_duplicate")
    f = outlier_field(fields)
    if defects.get("outlier") == center and f is not None and free:
        rows[free[0]][_cell(f.name, column)] = str(int(_range(f)[1] * OUTLIER_FACTOR) + 1)
        done.append("outlier")
    if defects.get("recoded") == center and recode_unknown_as_no(rows, fields, column):
        done.append("recoded")
    return done


def _cell(name: str, column: dict[str, int]) -> int:
    """The row cell of a field (the DAG column sits after the record id)."""
    return 0 if column[name] == 0 else column[name] + 1


def outlier_field(fields: list[Field]) -> Field | None:
    """The variable that gets the outlier: the first number without validation limits or branching logic (so no
    other check catches it: only the pool's outlier check), else the first number without branching."""
    numbers = [f for f in fields[1:] if f.datatype in {"integer", "number"} and not f.branching]
    free = [f for f in numbers if not f.min and not f.max]
    return (free or numbers or [None])[0]


def _unique_rows(rows: list[list[str]]) -> list[int]:
    """Indexes of rows whose record id is not blank and occurs once (ingest keeps exactly those)."""
    counts = Counter(r[0] for r in rows)
    return [k for k, r in enumerate(rows) if r[0] and counts[r[0]] == 1]


def keyed_rows(dd: CompiledDictionary, rows: list[list[str]], column: dict[str, int]) -> list[int]:
    """Rows ingest keeps that have enough duplicate keys filled in to be compared (mapping.yaml ``duplicates``)."""
    spec = dd.duplicates or {}
    keys = list(spec.get("keys", []))
    if not keys:
        return []
    need = int(spec.get("min_filled", len(keys)))
    return [k for k in _unique_rows(rows) if sum(rows[k][_cell(n, column)] != "" for n in keys) >= need]


def recoded_field(fields: list[Field]) -> tuple[Field, str, str] | None:
    """The variable the recoded center codes differently: the first without branching logic whose choices include
    'no' and 'unknown' (labels), with those two codes."""
    for f in fields[1:]:
        if f.branching or f.type == "checkbox":
            continue
        by_label = {label.strip().lower(): code for code, label in f.choices.items()}
        if "no" in by_label and "unknown" in by_label:
            return f, by_label["unknown"], by_label["no"]
    return None


def recode_unknown_as_no(rows: list[list[str]], fields: list[Field], column: dict[str, int]) -> bool:
    """Every 'unknown' of :func:`recoded_field` entered as 'no'."""
    found = recoded_field(fields)
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
