"""The workflow's stages as plain functions: the Snakemake scripts and the CLI call exactly these.

Each stage reads files and writes files, so it can be tested, benchmarked and run without Snakemake. Each stage
imports what only it needs when it runs: every workflow job is a new process, and the ingest job should not pay
for numpy or the compiler.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .deposit.pseudonym import PSEUDONYM_SYSTEM
from .dictionary import load_compiled
from .errors import OncofhirError
from .ingest import Records, Reject, ingest_to_files, read_records, read_rejects
from .io_utils import write_private, write_text_atomic

if TYPE_CHECKING:
    from .deposit.pseudonym import Pseudonymizer

#: Patient.identifier system without pseudonyms (library use, tests); the workflow always pseudonymises.
DEFAULT_IDENTIFIER_SYSTEM = "urn:oncofhir:record-id"


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def read_gate(path: str | Path) -> dict[int, str]:
    """Rows the QC gate excludes (``passed`` = no), with the reason to put in the rejects file."""
    excluded: dict[int, str] = {}
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        col = {name: k for k, name in enumerate(header)}
        for line in handle:
            cells = line.rstrip("\n").split("\t")
            if cells[col["passed"]] == "no":
                excluded[int(cells[col["row"]])] = (
                    f"quality gate: record score {cells[col['score']]}; {cells[col['reason']]}"
                )
    return excluded


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
) -> dict[str, Any]:
    """Read a center's export, streaming; write the normalised records, the rejects and a JSON report."""
    dd = load_compiled(compiled_json)
    report = ingest_to_files(export, dd, records_out, rejects_out, require_complete=require_complete)
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
) -> dict[str, Any]:
    """Build and write one bundle per record; reconcile rows in = bundles + rejects, or fail loudly.

    ``claim_profiles``: the IG's canonical base URL; every resource and the Bundle then name their generated
    profile in ``meta.profile`` (the workflow's ``fhir.claim_profiles``); None: no claims.

    With ``gate_tsv`` (the QC stage's gate), records the quality gate excludes go to the rejects with their score.
    With ``pseudonymizer`` every bundle carries the patient's pseudonym instead of the record id (identifier, ids,
    file name); the index maps the two. ``identifier_system`` defaults to the pseudonym or record-id system.
    """
    from .fhir.builder import BundleBuilder
    from .fhir.writer import write_center

    dd = load_compiled(compiled_json)
    records = read_records(records_csv)
    prior = read_rejects(ingest_rejects)
    if gate_tsv is not None:
        excluded = read_gate(gate_tsv)
        if excluded:
            keep = [k for k, row in enumerate(records.row_numbers) if row not in excluded]
            for k, row in enumerate(records.row_numbers):
                if row in excluded:
                    prior.append(Reject(row, records.rows[k][dd.record_id], "qc", excluded[row]))
            records = Records(
                records.columns,
                [records.rows[k] for k in keep],
                [records.row_numbers[k] for k in keep],
                [records.dags[k] for k in keep],
            )
    report = json.loads(Path(ingest_report).read_text(encoding="utf-8"))
    if identifier_system is None:
        identifier_system = PSEUDONYM_SYSTEM if pseudonymizer else DEFAULT_IDENTIFIER_SYSTEM
    pseudonymize = None
    if pseudonymizer is not None:
        use_case = dd.use_case

        def pseudonymize(record_id: str) -> str:
            return pseudonymizer.pseudonym(use_case, record_id)

    builder = BundleBuilder(dd, identifier_system, pseudonymize, canonical=claim_profiles)
    built = builder.build(records.rows, records.column_arrays(), records.row_numbers)
    for p in (ndjson_out, index_out, rejects_out, summary_out):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    counts = write_center(built, bundle_dir, ndjson_out, index_out, rejects_out, prior)
    rows_in = report["rows_in"]
    if rows_in != counts["bundles"] + counts["rejected"]:
        raise OncofhirError(
            f"counts do not reconcile: {rows_in} rows in, {counts['bundles']} bundles, {counts['rejected']} rejects"
        )
    summary = {
        "use_case": dd.use_case,
        "dictionary_version": dd.version,
        "pseudonymised": pseudonymizer is not None,
        "export_sha256": report["sha256"],
        "rows_in": rows_in,
        **counts,
    }
    write_private(summary_out, _dump(summary))
    return summary


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
