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


def generate(dd: CompiledDictionary, center: str, records: int, seed: int) -> str:
    """The CSV text of one center's export."""
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
            elif rng.random() < 0.02:
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
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if center.endswith("_b") else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" if center.endswith("_b") else "") + out.getvalue()


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
