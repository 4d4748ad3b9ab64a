"""The workflow's stages as plain functions: the Snakemake scripts and the CLI call exactly these.

Each stage reads files and writes files, so it can be tested, benchmarked and run without Snakemake. Each stage
imports what only it needs when it runs: every workflow job is a new process, and the ingest job should not pay
for numpy or the compiler.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .deposit.pseudonym import PSEUDONYM_SYSTEM
from .dictionary import load_compiled
from .errors import InputDataError, OncofhirError
from .ingest import Records, Reject, ingest_to_files, iter_records, iter_rejects, refuse_export
from .io_utils import clean_stale, private_parents, write_private, write_text_atomic

if TYPE_CHECKING:
    from .deposit.pseudonym import Pseudonymizer
    from .fhir.builder import Built, BundleBuilder
    from .views.stage import TableOutputs

#: Patient.identifier system without pseudonyms (library use, tests); the workflow always pseudonymises.
DEFAULT_IDENTIFIER_SYSTEM = "urn:oncofhir:record-id"


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def iter_gate(path: str | Path) -> Iterator[tuple[int, str]]:
    """(row, reason) for every row the QC gate excludes, in file order (QC writes it in row order)."""
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        col = {name: k for k, name in enumerate(header)}
        row_k, passed_k, score_k, reason_k = col["row"], col["passed"], col["score"], col["reason"]
        for line in handle:
            cells = line.rstrip("\n").split("\t")
            if cells[passed_k] == "no":
                yield int(cells[row_k]), f"quality gate: record score {cells[score_k]}; {cells[reason_k]}"


class _Gate:
    """The gate's exclusions walked alongside the records: both are in increasing row order, so one pass over
    each decides every record without holding the gate in memory."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = path
        self.excluded = iter_gate(path) if path is not None else iter(())
        self.next: tuple[int, str] | None = next(self.excluded, None)
        self.last = 0

    def reason(self, row: int) -> str | None:
        """Why the gate excludes ``row``, or None; rows must be asked in increasing order."""
        while self.next is not None and self.next[0] < row:
            self._advance()
        if self.next is not None and self.next[0] == row:
            reason = self.next[1]
            self._advance()
            return reason
        return None

    def _advance(self) -> None:
        assert self.next is not None
        self.last = self.next[0]
        self.next = next(self.excluded, None)
        if self.next is not None and self.next[0] <= self.last:
            raise OncofhirError(
                f"row {self.next[0]} after row {self.last}: not a gate written by the QC stage", path=str(self.path)
            )


def stage_compile(dictionary_dir: str | Path, ontology_dir: str | Path, out_json: str | Path) -> dict[str, Any]:
    """Compile (and thereby lint) one use case; writes the compiled JSON."""
    from .dictionary.compiler import compile_dictionary

    dd = compile_dictionary(dictionary_dir, ontology_dir)
    write_text_atomic(out_json, dd.to_json())
    return {"use_case": dd.use_case, "variables": len(dd.fields), "resources": len(dd.resources)}


def stage_ingest(
    compiled_json: str | Path,
    export: str | Path,
    records_out: str | Path,
    rejects_out: str | Path,
    report_out: str | Path,
    *,
    require_complete: bool = False,
    on_refused: str = "fail",
) -> dict[str, Any]:
    """Read a center's export, streaming; write the normalised records, the rejects and a JSON report.

    An export refused as a whole (:class:`InputDataError`) raises with ``on_refused="fail"``; with ``"report"``
    its rows go to the rejects with the refusal as reason and the report's ``refused`` says why
    (:func:`oncofhir.ingest.refuse_export`), so the rest of the run goes on.
    """
    clean_stale(records_out, rejects_out, report_out)  # temp files a killed run of this stage left
    dd = load_compiled(compiled_json)
    try:
        report = ingest_to_files(export, dd, records_out, rejects_out, require_complete=require_complete)
    except InputDataError as exc:
        if on_refused != "report":
            raise
        report = refuse_export(export, dd, exc, records_out, rejects_out)
    Path(report_out).parent.mkdir(parents=True, exist_ok=True)
    write_private(report_out, _dump(report))
    return report


def stage_fhir(
    compiled_json: str | Path,
    records_csv: str | Path,
    ingest_rejects: str | Path,
    ingest_report: str | Path,
    bundle_dir: str | Path,
    ndjson_out: str | Path,
    index_out: str | Path,
    rejects_out: str | Path,
    summary_out: str | Path,
    *,
    identifier_system: str | None = None,
    gate_tsv: str | Path | None = None,
    pseudonymizer: Pseudonymizer | None = None,
    claim_profiles: str | None = None,
    chunk_rows: int | None = None,
    tables: TableOutputs | None = None,
    privacy_counts: tuple[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Build and write one bundle per record; reconcile rows in = bundles + rejects, or fail loudly.

    Streams: the records are read and built ``chunk_rows`` at a time (default: about
    :data:`oncofhir.ingest.CHUNK_CELLS` cells), each bundle goes to the NDJSON as it is built, and the gate and
    the ingest rejects are read alongside; the outputs are the same bytes for any chunk size.

    ``claim_profiles``: the IG's canonical base URL; every resource and the Bundle then name their generated
    profile in ``meta.profile`` (the workflow's ``fhir.claim_profiles``); None: no claims.

    With ``gate_tsv`` (the QC stage's gate), records the quality gate excludes go to the rejects with their score.
    With ``pseudonymizer`` every bundle carries the patient's pseudonym instead of the record id (identifier, ids,
    file name); the index maps the two. ``identifier_system`` defaults to the pseudonym or record-id system.

    With ``tables`` the use case's views run over each bundle as it is written, and the center's Parquet tables and
    round-trip proof are written at the end (:mod:`oncofhir.views.stage`; the returned summary, not the file, has
    them under ``tables``). Memory then holds every view's rows for the center, as a table job would.

    With ``privacy_counts`` (the center's name and a path), the deposited records (those the index lists) are
    counted per combination of the use case's quasi-identifiers into that TSV (:mod:`oncofhir.privacy.counts`):
    the records and the index are at hand here, and a job of its own per center cost more than the counting.
    """
    from .fhir.builder import BundleBuilder
    from .fhir.writer import write_center

    outputs = [p for p in (bundle_dir, ndjson_out, index_out, rejects_out, summary_out) if p is not None]
    if privacy_counts is not None:
        outputs.append(privacy_counts[1])
    clean_stale(*outputs, *(tables.paths() if tables is not None else ()))
    sink = None
    pause: Callable[[], AbstractContextManager[None]] = nullcontext
    if tables is not None:
        started = time.process_time()
        from .views.stage import CenterTables, keep_pandas_out, no_cycle_collector

        keep_pandas_out()
        sink = CenterTables(tables.views_dir, str(ndjson_out))
        sink.cpu_seconds = time.process_time() - started  # with the imports the tables alone need
        pause = no_cycle_collector
    dd = load_compiled(compiled_json)
    report = json.loads(Path(ingest_report).read_text(encoding="utf-8"))
    if identifier_system is None:
        identifier_system = PSEUDONYM_SYSTEM if pseudonymizer else DEFAULT_IDENTIFIER_SYSTEM
    pseudonymize = None
    if pseudonymizer is not None:
        use_case = dd.use_case

        def pseudonymize(record_id: str) -> str:
            return pseudonymizer.pseudonym(use_case, record_id)

    builder = BundleBuilder(dd, identifier_system, pseudonymize, canonical=claim_profiles)
    items = _build_center(builder, records_csv, _Gate(gate_tsv), chunk_rows)
    for p in (ndjson_out, index_out, rejects_out, summary_out):
        private_parents(p)  # the rejects spool is made in the rejects' folder before anything is renamed there
    with pause():
        counts = write_center(
            items,
            bundle_dir,
            ndjson_out,
            index_out,
            rejects_out,
            iter_rejects(ingest_rejects),
            on_bundle=sink.add if sink is not None else None,
        )
    rows_in = report["rows_in"]
    if rows_in != counts["bundles"] + counts["rejected"]:
        raise OncofhirError(
            f"counts do not reconcile: {rows_in} rows in, {counts['bundles']} bundles, {counts['rejected']} rejects"
        )
    summary = {
        "use_case": dd.use_case,
        "dictionary_version": dd.version,
        "pseudonymised": pseudonymizer is not None,
        "secret_fingerprint": pseudonymizer.fingerprint if pseudonymizer is not None else "",
        "export_sha256": report["sha256"],
        "rows_in": rows_in,
        **counts,
    }
    write_private(summary_out, _dump(summary))
    if privacy_counts is not None:
        from .privacy.counts import count_classes, write_counts

        center, counts_out = privacy_counts
        private_parents(counts_out)
        write_counts(dd, count_classes(dd, records_csv, index_out, center), counts_out)
    if sink is None or tables is None:
        return summary
    with pause():
        done = sink.finish(compiled_json, tables, records=records_csv, index=index_out)
    return {**summary, "tables": done}


def _build_center(
    builder: BundleBuilder, records_csv: str | Path, gate: _Gate, chunk_rows: int | None
) -> Iterator[Built | Reject]:
    """Per record, in row order: its :class:`Built`, or a QC reject when the gate excludes it.

    Logic is evaluated per chunk (it is row by row, so chunks change nothing); the builder's memoised resource
    bodies carry over from chunk to chunk.
    """
    rid_col = builder.dd.record_id
    for chunk in iter_records(records_csv, chunk_rows):
        reasons = [gate.reason(row) for row in chunk.row_numbers]
        if not any(reasons):
            yield from builder.build(chunk.rows, chunk.column_arrays(), chunk.row_numbers)
            continue
        keep = [k for k, why in enumerate(reasons) if why is None]
        kept = Records(
            chunk.columns,
            [chunk.rows[k] for k in keep],
            [chunk.row_numbers[k] for k in keep],
            [chunk.dags[k] for k in keep],
        )
        built = builder.build(kept.rows, kept.column_arrays(), kept.row_numbers)
        for k, why in enumerate(reasons):
            if why is None:
                yield next(built)
            else:
                yield Reject(chunk.row_numbers[k], chunk.rows[k][rid_col], "qc", why)


def convert(
    dictionary_dir: str | Path,
    ontology_dir: str | Path,
    export: str | Path,
    out: str | Path,
    *,
    pseudonymizer: Pseudonymizer | None = None,
    bundle_files: bool = True,
) -> dict[str, Any]:
    """Compile, ingest and build one export in one go (``oncofhir convert``, benchmarks); returns the FHIR summary.

    Layout under ``out``: ``work/`` (compiled ``dictionary.json``, ``records.csv``, ingest rejects and report),
    ``bundles/`` (one file per patient, with ``bundle_files``), ``bundles.ndjson``, ``index.tsv``, ``rejects.tsv``,
    ``summary.json``.
    """
    out = Path(out)
    work = out / "work"
    compiled = work / "dictionary.json"
    stage_compile(dictionary_dir, ontology_dir, compiled)
    stage_ingest(compiled, export, work / "records.csv", work / "ingest_rejects.tsv", work / "ingest.json")
    return stage_fhir(
        compiled,
        work / "records.csv",
        work / "ingest_rejects.tsv",
        work / "ingest.json",
        out / "bundles" if bundle_files else None,
        out / "bundles.ndjson",
        out / "index.tsv",
        out / "rejects.tsv",
        out / "summary.json",
        pseudonymizer=pseudonymizer,
    )
