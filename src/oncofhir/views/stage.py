"""The workflow's per-center table stage: views -> Parquet, then the round-trip proof, in one process.

One job per (use case, center) does both, so the bundles are parsed once and the job start-up (interpreter,
pyarrow) is paid once (a SLURM job costs seconds: docs/cluster.md).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..dictionary.compiled import load_compiled
from ..errors import InputDataError
from ..ingest import read_records
from ..io_utils import write_text_atomic
from .roundtrip import read_index, round_trip, summary, write_tsv
from .tables import center_tables, load_views


def wide_view_name(use_case: str) -> str:
    """The name of a use case's wide patient view (its table in DuckDB)."""
    return f"{use_case}_patients"


def stage_tables(
    dictionary: str | Path,
    views_dir: str | Path,
    ndjson: str | Path,
    out_dir: str | Path,
    center: str,
    *,
    root: str | Path | None = None,
    records: str | Path | None = None,
    index: str | Path | None = None,
    roundtrip_json: str | Path | None = None,
    roundtrip_tsv: str | Path | None = None,
) -> dict[str, Any]:
    """Write the center's Parquet tables; with ``records`` and ``index``, also the round trip (JSON + TSV)."""
    with _no_cycle_collector():
        return _stage(dictionary, views_dir, ndjson, out_dir, center, root, records, index, roundtrip_json,
                      roundtrip_tsv)  # fmt: skip


@contextmanager
def _no_cycle_collector() -> Iterator[None]:
    """Pause Python's cycle collector: the stage allocates millions of acyclic objects (parsed JSON, rows) and
    keeps every view's rows, so each full collection walks them all again; that cost a quarter of the stage
    (measured on 4,000 uc7 patients, docs/tables.md#speed). Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _stage(
    dictionary: str | Path,
    views_dir: str | Path,
    ndjson: str | Path,
    out_dir: str | Path,
    center: str,
    root: str | Path | None,
    records: str | Path | None,
    index: str | Path | None,
    roundtrip_json: str | Path | None,
    roundtrip_tsv: str | Path | None,
) -> dict[str, Any]:
    dd = load_compiled(dictionary)
    views = load_views(views_dir)
    counts, all_rows = center_tables(views, ndjson, out_dir, center, root)
    out: dict[str, Any] = {"use_case": dd.use_case, "center": center, "rows": counts}
    if records is None or index is None:
        return out
    wide = wide_view_name(dd.use_case)
    position = next((i for i, v in enumerate(views) if v.name == wide), None)
    if position is None:
        raise InputDataError(f"no view named {wide} (the wide patient view) in the views folder", path=str(views_dir))
    names = [c.name for c in views[position].columns]
    rows: dict[str, dict[str, Any]] = {}
    duplicates = 0  # a slot selector matching two resources gives a patient two rows: the view is ambiguous
    for row in all_rows[position]:
        cells = dict(zip(names, row, strict=True))
        duplicates += cells["patient_id"] in rows
        rows[cells["patient_id"]] = cells
    try:
        recs = read_records(records)
        idx = read_index(index)
    except OSError as exc:
        raise InputDataError(f"cannot read: {exc.strerror}", path=exc.filename) from None
    except (KeyError, ValueError, StopIteration) as exc:
        raise InputDataError(f"not the FHIR stage's index or normalised records ({type(exc).__name__})") from None
    results = round_trip(dd, recs, idx, rows)
    report = summary(dd.use_case, center, results, bundles=len(rows), duplicate_rows=duplicates)
    if roundtrip_json:
        write_text_atomic(roundtrip_json, json.dumps(report, indent=1, sort_keys=True) + "\n")
    if roundtrip_tsv:
        write_tsv(results, roundtrip_tsv, center)
    out["roundtrip"] = {k: report[k] for k in ("passed", "recovered_percent", "totals", "failures")}
    return out
