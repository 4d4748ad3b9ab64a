"""The QC stage as two plain functions: one (use case, center), and the page combining all of them.

A center is read and checked in chunks of rows (:func:`iter_columns`), so a 500 MB export needs no more memory
than a small one; see :mod:`oncofhir.qc.assess` for why the outputs do not depend on the chunk size. The page
lists every failure by design: each chunk's rows go to an anonymous temporary file and are streamed into the
template, so that list costs disk, not memory (the page itself can be large: ~100 bytes per failure).

Configuration is validated before any data is read, so a typo in a weight fails the job with a message naming
the key rather than after minutes of work.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..dictionary.compiled import load_compiled
from ..errors import ConfigError, OncofhirError
from ..ingest import allow_large_fields
from ..io_utils import no_space, private_dir, private_writer, write_private
from .assess import CenterAccumulator, assess_chunk, reported_types
from .checks import run_checks
from .gate import check_gate
from .html import EXCLUDED_PREVIEW, center_page, failure_rows, index_page
from .model import DEFAULT_NO_CHECKS
from .pool_html import pool_sections
from .poolstats import FILE as POOL_STATS
from .poolstats import PoolStatsAccumulator
from .scoring import check_policy, check_thresholds, resolve_weights, score_table
from .writers import RecordTables, write_tables

OUTPUTS = (
    "scores.tsv",
    "records.tsv",
    "failures.tsv",
    "send_back.tsv",
    "qc.json",
    "report.html",
    "gate.tsv",
    POOL_STATS,
)


#: Cells of the records table per QC chunk (rows per chunk = this / columns): ~1,000,000 cells keep a chunk's
#: text, codes and check matrix near 150 MB whatever the center's size.
CHUNK_CELLS = 1_000_000

Columns = tuple[list[int], list[str], dict[str, NDArray[np.object_]]]


def iter_columns(records_csv: str | Path, chunk_rows: int | None = None) -> Iterator[Columns]:
    """The normalised records (:func:`oncofhir.ingest.write_records`) in chunks, column by column: row numbers,
    DAGs, columns. At least one chunk (possibly empty) is yielded.

    Same file as :func:`oncofhir.ingest.read_records`, read column-major: QC works on columns. The csv module and
    one transposition (``zip``) per chunk, without importing pandas.
    """
    path = Path(records_csv)
    allow_large_fields()
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if header[:2] != ["_row", "_dag"]:
                raise OncofhirError("not a records table written by ingest (no _row, _dag columns)", path=str(path))
            size = chunk_rows or max(1, CHUNK_CELLS // len(header))
            body: list[list[str]] = []
            number = 1
            yielded = False
            for row in reader:
                number += 1
                if len(row) != len(header):
                    raise OncofhirError(f"line {number}: {len(row)} cells, {len(header)} columns", path=str(path))
                body.append(row)
                if len(body) >= size:
                    yield _columns(header, body)
                    body, yielded = [], True
            if body or not yielded:
                yield _columns(header, body)
    except OSError as exc:
        raise OncofhirError(f"cannot read records: {exc.strerror}", path=str(path)) from None
    except UnicodeDecodeError:
        raise OncofhirError("cannot read records: not UTF-8", path=str(path)) from None
    except csv.Error as exc:
        raise OncofhirError(f"cannot read records: {exc}", path=str(path)) from None


def _columns(header: list[str], body: list[list[str]]) -> Columns:
    columns = list(zip(*body, strict=True)) if body else [()] * len(header)
    rows = [int(x) for x in columns[0]]
    arrays = {}
    for name, values in zip(header[2:], columns[2:], strict=True):
        array = np.empty(len(values), dtype=object)
        array[:] = values
        arrays[name] = array
    return rows, list(columns[1]), arrays


def read_columns(records_csv: str | Path) -> Columns:
    """The whole records table in one chunk (benchmarks, tests)."""
    return next(iter_columns(records_csv, sys.maxsize))


def stage_qc(
    compiled_json: str | Path,
    records_csv: str | Path,
    out_dir: str | Path,
    *,
    weights: Mapping[str, float] | None = None,
    min_record_score: float = 0.0,
    min_type_scores: Mapping[str, float] | None = None,
    center: str,
    no_checks: str = DEFAULT_NO_CHECKS,
    chunk_rows: int | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Check one center's records against its dictionary; write the QC outputs (:data:`OUTPUTS`) into ``out_dir``.

    ``weights`` override Table 2's per type; ``min_record_score`` (0-100) and ``min_type_scores`` ({type: 0-100},
    on the type's pass rate) decide the gate; ``no_checks`` is ``renormalise`` or ``full_credit``; ``thresholds``
    ({type, variable, rule id or ``<variable>.<type>``: failure rate in percent}) flag checks failing more often.
    The records are read and checked ``chunk_rows`` at a time (default: :data:`CHUNK_CELLS` cells), so memory
    stays flat; the outputs do not depend on the chunk size. Returns a short summary (records, score, failures,
    excluded).
    """
    resolved = resolve_weights(weights)
    policy = check_policy(no_checks)
    threshold, minimums = check_gate(min_record_score, min_type_scores)
    limits = check_thresholds(thresholds)
    dd = load_compiled(compiled_json)
    out = private_dir(out_dir)
    labels = {f.name: f.choices for f in dd.fields.values() if f.choices}
    total = CenterAccumulator(
        use_case=dd.use_case,
        center=center,
        dictionary_version=dd.version,
        weights=resolved,
        no_checks=policy,
        min_record_score=threshold,
        min_type_scores=minimums,
        preview=EXCLUDED_PREVIEW,
        labels=labels,
        thresholds=limits,
    )
    tables: RecordTables | None = None
    pool_stats = PoolStatsAccumulator(dd, center)  # what the use case's pool step needs (oncofhir.qc.pool)
    with contextlib.ExitStack() as stack:
        page_rows = stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8", newline="", dir=out))
        for row_numbers, dags, columns in iter_columns(records_csv, chunk_rows):
            n = len(row_numbers)
            result = run_checks(dd, columns, n)
            chunk = assess_chunk(
                result,
                row_numbers=row_numbers,
                record_ids=result.value_list(dd.record_id) if dd.record_id in result.columns else [""] * n,
                dags=dags,
                weights=resolved,
                no_checks=policy,
                min_record_score=threshold,
                min_type_scores=minimums,
            )
            if tables is None:
                types = reported_types(resolved, list(chunk.type_counts))
                tables = stack.enter_context(RecordTables(out, types, labels))
            tables.add(chunk)
            total.add(chunk)
            pool_stats.add(row_numbers, chunk.record_ids, columns)
            try:
                page_rows.write(failure_rows(chunk, labels))
            except OSError as exc:
                raise no_space(exc, out / "report.html") or exc from None
            del result, chunk, columns
        qc = total.finish()
        summary = qc.summary()
        write_tables(qc, out, summary)
        pool_stats.write(out / POOL_STATS)
        page_rows.seek(0)
        with private_writer(out / "report.html") as page:
            for piece in center_page(qc, iter(lambda: page_rows.read(1 << 20), ""), summary):
                page.write(piece.encode("utf-8"))
    return {
        "use_case": dd.use_case,
        "center": center,
        "records": qc.n_records,
        "checks": len(qc.checks),
        "score": summary["total"]["score"],
        "failures": summary["failures"],
        "excluded": qc.gate.excluded,
    }


def _read_json(path: str | Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OncofhirError(f"cannot read {what}: {exc}", path=str(path)) from None


def _with_pool(center: dict[str, Any], pool: dict[str, Any] | None) -> None:
    """Add the pool checks with a weight (``qc.pool.weights``) to a center's counts, table and total, in place.

    The center's own page and gate stay as its QC job wrote them (the pool runs after every center); the QC index
    and the use case's pooled score use these counts.
    """
    weights = {t: w for t, w in (pool or {}).get("settings", {}).get("weights", {}).items() if w > 0}
    counts = {r["type"]: (r["fail"], r["pass"]) for r in [*center["table"], *center["unscored"]]}
    counts = {t: fp for t, fp in counts.items() if sum(fp)}
    mine = (pool or {}).get("per_center", {}).get(center["center"])
    if weights and mine:
        for t in weights:
            counts[t] = (mine[t][0], mine[t][1])
        policy = center["policy"]
        table = score_table(counts, {**policy["weights"], **weights}, policy["no_checks"])
        center["table"] = [_score_row(r) for r in table.rows]
        center["total"] = _score_row(table.total)
    center["counts"] = counts


def _score_row(r: Any) -> dict[str, Any]:
    return {"type": r.type, "fail": r.fail, "pass": r.passed, "weight": r.weight, "score": r.score}


def write_qc_index(
    qc_json_paths: list[str], out_html: str, *, min_score: float = 80.0, pool_json_paths: Sequence[str] = ()
) -> dict[str, Any]:
    """The combined page: every center's scores, and each use case's score from its centers' pooled counts; a
    center scoring below ``min_score`` (``qc.min_center_score``) is flagged. With the use cases' ``pool.json``
    (:mod:`oncofhir.qc.pool`): each use case's drift heat map, outliers and duplicates per center, and the pool
    checks given a weight in the scores.

    Centers of one use case must have been scored with the same weights and policy (one config), else pooling
    would mix incomparable numbers: that is an error.
    """
    out_path = Path(out_html)
    pools = [_read_json(p, "QC pool result") for p in pool_json_paths]
    pool_of = {p["use_case"]: p for p in pools}
    centers = []
    for path in qc_json_paths:
        data = _read_json(path, "QC result")
        report = Path(path).with_name("report.html")
        data["link"] = Path(os.path.relpath(report, out_path.parent)).as_posix()
        _with_pool(data, pool_of.get(data["use_case"]))
        centers.append(data)
    centers.sort(key=lambda c: (c["use_case"], c["center"]))
    use_cases = []
    for uc in sorted({c["use_case"] for c in centers}):
        members = [c for c in centers if c["use_case"] == uc]
        policy = members[0]["policy"]
        for c in members[1:]:
            if c["policy"] != policy:
                raise ConfigError(
                    f"QC results of {uc} were scored with different weights or policies "
                    f"({members[0]['center']}: {policy}; {c['center']}: {c['policy']}): re-run QC with one config"
                )
        counts: dict[str, tuple[int, int]] = {}
        for c in members:
            for t, (f, p) in c["counts"].items():
                fail, passed = counts.get(t, (0, 0))
                counts[t] = (fail + f, passed + p)
        weights = dict(policy["weights"])
        weights.update({t: w for t, w in pool_of.get(uc, {}).get("settings", {}).get("weights", {}).items() if w > 0})
        use_cases.append(
            {
                "use_case": uc,
                "centers": len(members),
                "records": sum(c["records"] for c in members),
                "excluded": sum(c["gate"]["excluded"] for c in members),
                "table": score_table(counts, weights, policy["no_checks"]),
            }
        )
    links = {(c["use_case"], c["center"]): c["link"] for c in centers}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_private(out_path, index_page(centers, use_cases, min_score, pool_sections(pools, links)).encode("utf-8"))
    return {
        "centers": len(centers),
        "use_cases": {u["use_case"]: u["table"].total.score for u in use_cases},
    }
