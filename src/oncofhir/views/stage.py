"""A center's analysis tables: the views over its bundles into Parquet, then the round-trip proof.

The workflow runs this inside the FHIR job (:func:`oncofhir.pipeline.stage_fhir` hands each bundle to a
:class:`CenterTables` as it is written), so the bundles are never parsed back from the NDJSON and no job of its own
is started per center: at a consortium's scale a job's start-up and Snakemake's work per job cost more than the
views (docs/tables.md#speed). :func:`stage_tables` runs the same over an NDJSON file (``oncofhir tables``).
"""

from __future__ import annotations

import gc
import importlib.abc
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dictionary.compiled import load_compiled
from ..errors import InputDataError
from ..ingest import read_records
from ..io_utils import clean_stale, write_text_atomic
from .roundtrip import read_index, round_trip, summary, write_tsv
from .runner import ViewError
from .tables import PARQUET, TableError, load_views, private_tree, read_ndjson, to_table, write_parquet


def wide_view_name(use_case: str) -> str:
    """The name of a use case's wide patient view (its table in DuckDB)."""
    return f"{use_case}_patients"


@dataclass(frozen=True)
class TableOutputs:
    """Where a center's tables and round trip go (the FHIR stage's ``--views-dir`` and friends).

    ``root``: the folders from here down to ``out_dir`` are made owner-only (default ``out_dir``)."""

    views_dir: str | Path
    out_dir: str | Path
    center: str
    root: str | Path | None = None
    roundtrip_json: str | Path | None = None
    roundtrip_tsv: str | Path | None = None

    def paths(self) -> list[Path]:
        """The outputs (for clearing what a killed job left)."""
        return [Path(p) for p in (self.out_dir, self.roundtrip_json, self.roundtrip_tsv) if p is not None]


class _NoPandas(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` fail in this process: pyarrow imports pandas (0.3-0.5 s) only to ask whether a list
    is a DataFrame, and each of a consortium's table jobs would pay that. pyarrow then records "no pandas"."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not used by oncofhir's table stage")
        return None


def keep_pandas_out() -> None:
    """Keep pandas out of this process (call before pyarrow is imported; nothing when pandas is already in)."""
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


class CenterTables:
    """The rows of every view of a use case over one center's bundles, fed one bundle at a time.

    Holds every view's rows until :meth:`finish` writes them (a Parquet file per view is written whole); the
    bundles themselves are not kept. ``source`` names the bundles in errors (the NDJSON file).
    """

    def __init__(self, views_dir: str | Path, source: str) -> None:
        started = time.process_time()
        self.views = load_views(views_dir)
        self.views_dir = views_dir
        self.source = source
        self.rows: list[list[tuple[Any, ...]]] = [[] for _ in self.views]
        self._pairs = list(zip(self.rows, self.views, strict=True))
        #: CPU seconds spent here (views, Parquet, round trip): what the tables add to the job that feeds them,
        #: reported in its log (benchmarks/bench_workflow.py sums it)
        self.cpu_seconds = time.process_time() - started

    def add(self, number: int, resource: dict[str, Any]) -> None:
        """Run every view over one resource (``number``: its NDJSON line, for errors). The views only read it."""
        started = time.process_time()
        for rows, view in self._pairs:
            try:
                rows.extend(view.rows(resource))
            except ViewError as exc:
                raise TableError(f"line {number}: view {view.name}: {exc}", path=self.source) from None
        self.cpu_seconds += time.process_time() - started

    def finish(
        self,
        dictionary: str | Path,
        out: TableOutputs,
        *,
        records: str | Path | None = None,
        index: str | Path | None = None,
    ) -> dict[str, Any]:
        """Write one Parquet file per view; with ``records`` and ``index`` (the center's normalised records and
        the FHIR stage's index), also the round trip (written where ``out`` says, JSON and TSV)."""
        started = time.process_time()
        result = self._finish(dictionary, out, records, index)
        self.cpu_seconds += time.process_time() - started
        return {**result, "cpu_seconds": round(self.cpu_seconds, 3)}

    def _finish(
        self, dictionary: str | Path, out: TableOutputs, records: str | Path | None, index: str | Path | None
    ) -> dict[str, Any]:
        dd = load_compiled(dictionary)
        folder = private_tree(out.root or out.out_dir, out.out_dir)
        counts = {}
        for rows, view in self._pairs:
            write_parquet(to_table(view, rows, out.center), folder / f"{view.name}{PARQUET}")
            counts[str(view.name)] = len(rows)
        result: dict[str, Any] = {"use_case": dd.use_case, "center": out.center, "rows": counts}
        if records is None or index is None:
            return result
        report = self._round_trip(dd, out, records, index)
        result["roundtrip"] = {k: report[k] for k in ("passed", "recovered_percent", "totals", "failures")}
        return result

    def _round_trip(self, dd: Any, out: TableOutputs, records: str | Path, index: str | Path) -> dict[str, Any]:
        wide = wide_view_name(dd.use_case)
        position = next((i for i, v in enumerate(self.views) if v.name == wide), None)
        if position is None:
            raise InputDataError(
                f"no view named {wide} (the wide patient view) in the views folder", path=str(self.views_dir)
            )
        names = [c.name for c in self.views[position].columns]
        rows: dict[str, dict[str, Any]] = {}
        duplicates = 0  # a slot selector matching two resources gives a patient two rows: the view is ambiguous
        for row in self.rows[position]:
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
        report = summary(dd.use_case, out.center, results, bundles=len(rows), duplicate_rows=duplicates)
        if out.roundtrip_json:
            write_text_atomic(out.roundtrip_json, json.dumps(report, indent=1, sort_keys=True) + "\n")
        if out.roundtrip_tsv:
            write_tsv(results, out.roundtrip_tsv, out.center)
        return report


@contextmanager
def no_cycle_collector() -> Iterator[None]:
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
    """Write the center's Parquet tables from its NDJSON; with ``records`` and ``index``, also the round trip."""
    out = TableOutputs(views_dir, out_dir, center, root, roundtrip_json, roundtrip_tsv)
    clean_stale(*out.paths())  # what a killed run left
    with no_cycle_collector():
        tables = CenterTables(views_dir, str(ndjson))
        for number, resource in read_ndjson(ndjson):
            tables.add(number, resource)
        return tables.finish(dictionary, out, records=records, index=index)
