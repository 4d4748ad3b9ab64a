"""``oncofhir`` command line: every workflow stage, usable without Snakemake.

Exit codes (:data:`EXIT_CODES`, shown by ``oncofhir --help``): 0 success, 1 validation errors found (``validate``,
``validate-center``, ``verify``) or a failed load (``load``, ``server-verify``), 2 usage or configuration, 3
dictionary, 4 input data, 5 out of resources (no space left on the disk or quota, out of memory), 70 internal error
(a bug), 130 interrupted (Ctrl-C). User errors print one readable message (file, row, column, value), never a
traceback; an internal error prints one line, its traceback goes to the ``--log`` file only.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from . import __version__
from .errors import ConfigError, OncofhirError, ResourceError
from .paths import DICTIONARIES, ONTOLOGIES

# The dictionaries and ontology tables bundled with the package (oncofhir.paths): the defaults work from any folder.
DEFAULT_DICTIONARIES = str(DICTIONARIES)
DEFAULT_ONTOLOGIES = str(ONTOLOGIES)
EXIT_CODES = """\
exit codes:
  0   success
  1   validation errors found (validate, validate-center, verify); a center not loaded or a count that differs
      (load, server-verify)
  2   usage or configuration error (also a path that cannot be used: no permission, read-only, file vs folder)
  3   dictionary error (data dictionary, mapping or ontology table)
  4   input data error (an export, records or bundles that cannot be read)
  5   out of resources (disk full or quota, out of memory)
  70  internal error (a bug: the traceback goes to the --log file, one line to the terminal)
  130 interrupted (Ctrl-C)
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's help shows its default (none shown for required or unset options); the exit-code table keeps
    its layout."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """A parser whose subcommands (created as the same class) all use :class:`_HelpFormatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _cmd_lint(args: argparse.Namespace) -> int:
    from .dictionary import compile_dictionary
    from .dictionary.consistency import inconsistent_codings

    status = 0
    compiled = []
    for directory in args.directories:
        try:
            dd = compile_dictionary(directory, args.ontologies)
        except OncofhirError as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            status = 3
            continue
        compiled.append(dd)
        coded = sum(1 for f in dd.fields.values() if f.choices)
        print(
            f"ok   {directory}: use case {dd.use_case} v{dd.version}, {len(dd.fields)} variables "
            f"({coded} coded), {len(dd.resources)} resource slots"
        )
    if len(compiled) > 1:
        problems = inconsistent_codings(compiled)
        names = ", ".join(dd.use_case for dd in compiled)
        if problems:
            print(f"FAIL shared variables of {names}:" + "".join(f"\n  - {p}" for p in problems), file=sys.stderr)
            status = 3
        else:
            print(f"ok   shared variables of {names}: the same answers have the same codes")
    return status


def _cmd_compile(args: argparse.Namespace) -> int:
    from .pipeline import stage_compile

    info = stage_compile(args.directory, args.ontologies, args.output)
    print(f"compiled {info['use_case']}: {info['variables']} variables, {info['resources']} slots -> {args.output}")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from .pipeline import stage_ingest

    report = stage_ingest(
        args.dictionary,
        args.export,
        args.records,
        args.rejects,
        args.report,
        require_complete=args.require_complete,
        on_refused=args.on_refused,
    )
    if report.get("refused"):
        print(
            f"oncofhir: {args.export}: export refused: {report['refused']} "
            f"(its {report['rows_in']} rows are in {args.rejects}; the run goes on without them)",
            file=sys.stderr,
        )
    print(
        f"{args.export}: {report['rows_in']} rows, {report['records']} records, {report['rejected']} rejected; "
        f"unknown columns: {', '.join(report['unknown_columns']) or 'none'}; "
        f"missing columns: {', '.join(report['missing_columns']) or 'none'}"
    )
    return 0


def _cmd_qc(args: argparse.Namespace) -> int:
    from .qc import stage_qc

    weights = _mapping_option(args.weights, "--weights")
    minimums = _mapping_option(args.min_type_scores, "--min-type-scores")
    thresholds = _mapping_option(args.thresholds, "--thresholds")
    summary = stage_qc(
        args.dictionary,
        args.records,
        args.out_dir,
        weights=weights,
        min_record_score=args.min_record_score,
        min_type_scores=minimums,
        center=args.center,
        no_checks=args.no_checks,
        thresholds=thresholds,  # type: ignore[arg-type]
    )
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_qc_pool(args: argparse.Namespace) -> int:
    from .qc.pool import pool_settings, stage_qc_pool

    settings = pool_settings(_mapping_option(args.settings, "--settings"))
    pseudonym = None
    if args.pseudonyms:
        from .deposit.pseudonym import Pseudonymizer, load_secret

        pseudonym = Pseudonymizer(load_secret(allow_demo=not args.refuse_demo_secret)).pseudonym
    summary = stage_qc_pool(args.dictionary, args.stats, args.out_dir, settings=settings, pseudonym=pseudonym)
    print(json.dumps(summary, sort_keys=True))
    return 0


def _mapping_option(text: str | None, option: str) -> dict[str, object] | None:
    """A YAML/JSON mapping given on the command line (check type -> number); None when not given."""
    import yaml

    if not text:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{option}: not YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{option}: expected a mapping of check type to number, e.g. {{range: 5}}, got {text!r}")
    return value


def _cmd_fhir(args: argparse.Namespace) -> int:
    from .deposit.pseudonym import Pseudonymizer, load_secret
    from .pipeline import stage_fhir

    pseudonymizer = None if args.no_pseudonyms else Pseudonymizer(load_secret(allow_demo=not args.refuse_demo_secret))
    tables = None
    if args.views_dir or args.tables_dir:
        from .views.stage import TableOutputs

        if not (args.views_dir and args.tables_dir and args.center):
            raise ConfigError("fhir: --views-dir, --tables-dir and --center go together (the center's tables)")
        tables = TableOutputs(
            args.views_dir, args.tables_dir, args.center, args.tables_root, args.roundtrip_json, args.roundtrip_tsv
        )
    elif args.roundtrip_json or args.roundtrip_tsv or args.tables_root:
        raise ConfigError("fhir: --roundtrip-json, --roundtrip-tsv and --tables-root need --views-dir")
    if args.privacy_counts and not args.center:
        raise ConfigError("fhir: --privacy-counts needs --center (a quasi-identifier may be the center)")

    summary = stage_fhir(
        args.dictionary,
        args.records,
        args.ingest_rejects,
        args.ingest_report,
        args.out_dir,
        args.ndjson,
        args.index,
        args.rejects,
        args.summary,
        identifier_system=args.identifier_system,
        gate_tsv=args.gate,
        claim_profiles=args.claim_profiles,
        pseudonymizer=pseudonymizer,
        tables=tables,
        privacy_counts=(args.center, args.privacy_counts) if args.privacy_counts else None,
    )
    print(json.dumps(summary, sort_keys=True))
    done = summary.get("tables", {})
    if "cpu_seconds" in done:
        print(f"tables: {done['cpu_seconds']:.3f} CPU-s (views, Parquet, round trip)")
    rt = done.get("roundtrip")
    if rt and not rt["passed"]:
        lost = ", ".join(f["variable"] for f in rt["failures"])
        print(f"round trip FAILED for {args.center}: values lost or changed in {lost}", file=sys.stderr)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .validate.report import run_cli

    code, out = run_cli(
        args.use_case, args.paths, dictionaries=args.dictionaries, ontologies=args.ontologies, fmt=args.format
    )
    print(out)
    return code


def _cmd_convert(args: argparse.Namespace) -> int:
    """Compile + ingest + FHIR in one go into ``--out`` (for a quick look outside the workflow)."""
    from .pipeline import convert

    summary = convert(args.dictionary_dir, args.ontologies, args.export, args.out)
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_validate_center(args: argparse.Namespace) -> int:
    """The workflow's validate stage: one center's bundles, the report files, exit 1 on errors with --fail-on-error."""
    from .validate.report import stage_validate

    summary = stage_validate(
        args.dictionary,
        args.bundles,
        args.out_dir,
        fail_on_error=args.fail_on_error,
        hl7_outcome=args.hl7_outcome,
        ontologies=args.ontologies,
        center=args.center,
        index=args.index,
    )
    print(f"{summary['line']} ({summary['seconds']} s, {summary['bundles_per_second']} bundles/s)")
    return 0


def _cmd_encrypt(args: argparse.Namespace) -> int:
    """The workflow's encrypt stage: a center's bundles (NDJSON lines, named by the index) and NDJSON to .c4gh."""
    from .deposit.encrypt import stage_encrypt

    if bool(args.privacy) != bool(args.dictionary):
        raise ConfigError("encrypt: --privacy and --dictionary go together (the generalisation plan and its model)")
    if args.tables_dir and not (args.tables_out and args.tables_manifest):
        raise ConfigError("encrypt: --tables-dir needs --tables-out and --tables-manifest")
    if args.tables_dir and args.privacy and not args.views_dir:
        raise ConfigError("encrypt: generalising (--privacy), the tables need --views-dir to be built again")
    summary = stage_encrypt(
        args.bundle_dir,
        args.ndjson,
        args.out_dir,
        args.manifest,
        use_case=args.use_case,
        center=args.center,
        recipients=args.recipient,
        sender_key=args.sender_key,
        threads=args.threads,
        index=args.index,
        fhir_summary=args.fhir_summary,
        generalise=(args.dictionary, args.privacy) if args.privacy else None,
        generalised_out=args.generalised,
    )
    if args.tables_dir:  # the center's analysis tables (docs/tables.md), behind the same privacy gate as its bundles
        import time

        from .views.deposit import encrypt_tables

        started = time.process_time()
        summary["tables"] = encrypt_tables(
            args.tables_dir,
            args.tables_out,
            args.tables_manifest,
            use_case=args.use_case,
            center=args.center,
            recipients=args.recipient,
            sender_key=args.sender_key,
            fhir_summary=args.fhir_summary,
            generalise=(args.dictionary, args.privacy, args.views_dir, args.ndjson) if args.privacy else None,
        )
        print(f"tables: {time.process_time() - started:.3f} CPU-s (encrypted for the deposit)")
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """Check a deposit manifest against the encrypted files (and, with --sk, decrypt and compare each)."""
    from .deposit.manifest import read_manifest, verify

    problems = verify(args.manifest, root=args.root, private_key=args.sk, passphrase_env=args.passphrase_env)
    problems += _crate_problems(args.manifest)
    files = len(read_manifest(args.manifest))
    outsider = sum("does not decrypt (not a recipient of this key" in p for p in problems)
    if args.sk and files and outsider == files:  # the wrong key, not a deposit's fault: one line, not one per file
        raise ConfigError(
            f"--sk {args.sk}: this key is not a recipient of any of the {files} file(s) of {args.manifest}; give the "
            "private key of one of the recipients the deposit was encrypted for (deposit.recipients)"
        )
    how = "decrypted and compared" if args.sk else "checked (sizes, md5, sha256 of the encrypted files)"
    for problem in problems:
        print(f"{args.manifest}: {problem}")
    if problems:
        print(f"oncofhir verify: {len(problems)} problem(s) in {files} file(s)", file=sys.stderr)
        return 1
    print(f"oncofhir verify: {files} file(s) {how}: all match {args.manifest}")
    return 0


def _crate_problems(manifest: str) -> list[str]:
    """The run's RO-Crate (results/ro-crate/, beside the merged manifest's ega/) must list every deposit file with
    the manifest's SHA-256 (docs/provenance.md#run-crate); nothing to check where there is no crate."""
    from pathlib import Path

    from .deposit.manifest import iter_manifest
    from .provenance.crate import crate_problems

    crate = Path(manifest).resolve().parent.parent / "ro-crate" / "ro-crate-metadata.json"
    return crate_problems(crate, iter_manifest(manifest)) if crate.is_file() else []


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import write_demo

    written = write_demo(args.dictionaries, args.out, seed=args.seed, records=args.records, centers=args.centers)
    for path, n in written:
        print(f"{path}: {n} records")
    return 0


def _cmd_ig(args: argparse.Namespace) -> int:
    from .ig.build import build_ig

    info = build_ig(
        args.dictionary,
        args.out,
        canonical=args.canonical,
        identifier_system=args.identifier_system,
        package=args.package,
        sushi_home=args.sushi_home,
        sushi_log=args.sushi_log,
        install_sushi=args.install_sushi,
    )
    print(json.dumps(info, sort_keys=True))
    return 0


# ---- Re-identification risk (issue #16; docs/provenance.md#re-identification-risk) -------------------------------
def _cmd_privacy_counts(args: argparse.Namespace) -> int:
    from .dictionary import load_compiled
    from .privacy import count_classes, write_counts

    dd = load_compiled(args.dictionary)
    counts = count_classes(dd, args.records, args.index, args.center)
    write_counts(dd, counts, args.out)
    print(f"{args.center}: {sum(counts.values())} deposited record(s) in {len(counts)} combination(s)")
    return 0


def _cmd_privacy(args: argparse.Namespace) -> int:
    from .privacy import stage_privacy

    print(stage_privacy(args.dictionary, args.counts, args.json, args.tsv, args.k, args.action))
    return 0


def _cmd_privacy_gate(args: argparse.Namespace) -> int:
    from .privacy import check_release

    print(check_release(args.decision))
    return 0


def _add_privacy_commands(sub: argparse._SubParsersAction) -> None:
    pc = sub.add_parser("privacy-counts", help="count a center's deposited records per quasi-identifier combination")
    pc.add_argument("--dictionary", required=True, help="compiled dictionary JSON (its privacy quasi-identifiers)")
    pc.add_argument("--records", required=True, help="the center's normalised records (ingest)")
    pc.add_argument("--index", required=True, help="the FHIR stage's index: the deposited records")
    pc.add_argument("--center", required=True, help="center id (counted when the center is a quasi-identifier)")
    pc.add_argument("--out", required=True, help="counts TSV (no record ids; owner-only)")
    pc.set_defaults(func=_cmd_privacy_counts)
    pr = sub.add_parser("privacy", help="k-anonymity and l-diversity of a use case from its centers' counts")
    pr.add_argument("--dictionary", required=True, help="compiled dictionary JSON of the use case")
    pr.add_argument("--counts", nargs="+", required=True, help="every center's counts TSV")
    pr.add_argument("--json", required=True, help="the report: risk, what would reach k, the release decision")
    pr.add_argument("--tsv", required=True, help="every equivalence class, smallest first (owner-only)")
    pr.add_argument("--k", type=int, default=5, help="smallest class size allowed (k-anonymity)")
    pr.add_argument(
        "--action",
        choices=("report", "block"),
        default="report",
        help="below k: only report, or block the use case's encryption",
    )
    pr.set_defaults(func=_cmd_privacy)
    pg = sub.add_parser("privacy-gate", help="exit 4 with the reason if a use case's privacy decision blocks it")
    pg.add_argument("decision", help="results/privacy/<use case>.json")
    pg.set_defaults(func=_cmd_privacy_gate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    p = _Parser(prog="oncofhir", description=__doc__.splitlines()[0].replace("``", ""), epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"oncofhir {__version__}")
    p.add_argument(
        "--log",
        help="write everything (and tracebacks of internal errors) to this file; an error is also printed, in "
        "one line, to the terminal (how the workflow's rules run the stages)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("dictionary", help="lint or compile use-case dictionaries")
    dsub = d.add_subparsers(dest="action", required=True)
    lint = dsub.add_parser("lint", help="check dictionaries; exit 3 listing every problem")
    lint.add_argument("directories", nargs="+", help="resources/dictionaries/<use_case> folders")
    lint.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES, help="ontology tables folder")
    lint.set_defaults(func=_cmd_lint)
    comp = dsub.add_parser("compile", help="compile one dictionary to JSON")
    comp.add_argument("directory", help="a resources/dictionaries/<use_case> folder")
    comp.add_argument("-o", "--output", required=True, help="output: the compiled dictionary JSON")
    comp.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES, help="ontology tables folder")
    comp.set_defaults(func=_cmd_compile)

    ing = sub.add_parser("ingest", help="read a center's REDCap export against a compiled dictionary")
    ing.add_argument("--dictionary", required=True, help="compiled dictionary JSON")
    ing.add_argument("--export", required=True, help="REDCap raw-data CSV export")
    ing.add_argument("--records", required=True, help="output: normalised records CSV")
    ing.add_argument("--rejects", required=True, help="output: rejected rows TSV")
    ing.add_argument("--report", required=True, help="output: ingest report JSON")
    ing.add_argument("--require-complete", action="store_true", help="reject records whose form is not Complete")
    ing.add_argument(
        "--on-refused",
        choices=["fail", "report"],
        default="fail",
        help="an export refused as a whole (labels, wrong separator, another use case's columns): exit 4, or put "
        "every row in the rejects with the reason and exit 0 (the workflow's ingest.on_refused)",
    )
    ing.set_defaults(func=_cmd_ingest)

    qc = sub.add_parser("qc", help="score data quality (the paper's Table 2), write the drill-down and the gate")
    qc.add_argument("--dictionary", required=True, help="compiled dictionary JSON")
    qc.add_argument("--records", required=True, help="normalised records CSV from `oncofhir ingest`")
    qc.add_argument("--out-dir", required=True, help="output folder: scores, records, failures, gate, qc.json, page")
    qc.add_argument("--center", required=True, help="center id shown in the report")
    qc.add_argument("--weights", help="YAML/JSON mapping check type -> weight (default: the paper's Table 2)")
    qc.add_argument("--min-record-score", type=float, default=0.0, help="gate: minimum record score (0-100)")
    qc.add_argument("--min-type-scores", help="gate: YAML/JSON mapping check type -> minimum pass rate (0-100)")
    qc.add_argument(
        "--thresholds",
        help="YAML/JSON mapping check type, variable, rule id or <variable>.<type> -> failure rate (percent) above "
        "which the center page flags the check",
    )
    qc.add_argument(
        "--no-checks",
        choices=["renormalise", "full_credit"],
        default="renormalise",
        help="a check type with no applicable check: left out of the score, or counted as fully passed",
    )
    qc.set_defaults(func=_cmd_qc)

    qp = sub.add_parser("qc-pool", help="outliers, duplicate patients and drift over all centers of a use case")
    qp.add_argument("--dictionary", required=True, help="compiled dictionary JSON of the use case")
    qp.add_argument("--stats", nargs="+", required=True, help="every center's pool_stats.json (from `oncofhir qc`)")
    qp.add_argument(
        "--out-dir", required=True, help="output folder: drift.tsv, outliers.tsv, duplicates.tsv, pool.json"
    )
    qp.add_argument("--settings", help="YAML/JSON: the config's qc.pool (thresholds, weights; docs/qc.md)")
    qp.add_argument(
        "--pseudonyms",
        action="store_true",
        help="add each duplicate's pseudonym (made with the secret in ONCOFHIR_PSEUDONYM_KEY)",
    )
    qp.add_argument("--refuse-demo-secret", action="store_true", help="refuse the public demo secret (real data)")
    qp.set_defaults(func=_cmd_qc_pool)

    fh = sub.add_parser("fhir", help="build one FHIR R4B bundle per record")
    fh.add_argument("--dictionary", required=True, help="compiled dictionary JSON")
    fh.add_argument("--records", required=True, help="normalised records CSV from `oncofhir ingest`")
    fh.add_argument("--ingest-rejects", required=True, help="rejects TSV from `oncofhir ingest`")
    fh.add_argument("--ingest-report", required=True, help="report JSON from `oncofhir ingest`")
    fh.add_argument("--out-dir", help="folder for one <patient>.json file per bundle (default: none, NDJSON only)")
    fh.add_argument("--ndjson", required=True, help="output: the center's bundles, one per line")
    fh.add_argument("--index", required=True, help="output: record id, pseudonym, file, bundle id (local only)")
    fh.add_argument("--rejects", required=True, help="output: every rejected row with its reason (TSV)")
    fh.add_argument("--summary", required=True, help="output: counts JSON")
    fh.add_argument(
        "--identifier-system",
        help="Patient.identifier system (default: urn:oncofhir:pseudonym, or urn:oncofhir:record-id with "
        "--no-pseudonyms)",
    )
    fh.add_argument(
        "--no-pseudonyms",
        action="store_true",
        help="keep the record ids (local use only: such bundles cannot be deposited); by default bundles are "
        "named and identified by pseudonyms made with the secret in ONCOFHIR_PSEUDONYM_KEY",
    )
    fh.add_argument("--refuse-demo-secret", action="store_true", help="refuse the public demo secret (real data)")
    fh.add_argument("--gate", help="gate.tsv from `oncofhir qc`: records it excludes go to the rejects")
    fh.add_argument(
        "--claim-profiles",
        metavar="CANONICAL",
        help="every resource and the Bundle name their profile of the IG with this canonical base URL in "
        "meta.profile (docs/ig.md); default: no claims",
    )
    fh.add_argument(
        "--views-dir",
        help="the use case's ViewDefinitions (oncofhir views): run them over each bundle as it is written, into "
        "one Parquet file per view in --tables-dir (docs/tables.md)",
    )
    fh.add_argument("--tables-dir", help="with --views-dir: folder for <view name>.parquet (created 0700)")
    fh.add_argument("--center", help="center name (the tables' center column; a quasi-identifier's value)")
    fh.add_argument("--tables-root", help="folders from here down to --tables-dir are made owner-only")
    fh.add_argument("--roundtrip-json", help="with --views-dir: write the round trip's per-center report here")
    fh.add_argument("--roundtrip-tsv", help="with --views-dir: write the round trip's per-variable counts here")
    fh.add_argument(
        "--privacy-counts",
        help="also count the deposited records per quasi-identifier combination into this TSV (as oncofhir "
        "privacy-counts does; needs --center)",
    )
    fh.set_defaults(func=_cmd_fhir)

    va = sub.add_parser("validate", help="validate bundles (structure, invariants, references, terminology, model)")
    va.add_argument("--use-case", required=True, help="use case whose dictionary the bundles follow")
    va.add_argument("paths", nargs="+", help="bundle files (.json, .ndjson) or folders")
    va.add_argument("--format", choices=["text", "json"], default="text", help="text summary, or every issue as JSON")
    va.add_argument("--dictionaries", default=DEFAULT_DICTIONARIES, help="folder of use-case dictionary folders")
    va.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES, help="ontology tables folder")
    va.set_defaults(func=_cmd_validate)

    cv = sub.add_parser("convert", help="dictionary folder + export -> bundles, in one step")
    cv.add_argument("dictionary_dir", help="a resources/dictionaries/<use_case> folder")
    cv.add_argument("export", help="REDCap raw-data CSV export")
    cv.add_argument("--out", required=True, help="output folder (bundles, NDJSON, index, rejects)")
    cv.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES, help="ontology tables folder")
    cv.set_defaults(func=_cmd_convert)

    vc = sub.add_parser("validate-center", help="the workflow's validate stage for one center (report files)")
    vc.add_argument("--dictionary", required=True, help="compiled dictionary JSON")
    vc.add_argument("--bundles", required=True, help="the center's NDJSON (or a folder of bundle files)")
    vc.add_argument("--out-dir", required=True, help="folder for issues.json, issues.tsv, summary.json")
    vc.add_argument("--center", required=True, help="center id shown in the report")
    vc.add_argument(
        "--index", help="the FHIR stage's index: adds each issue's record id and pseudonym to the report (local)"
    )
    vc.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES, help="ontology tables folder")
    vc.add_argument("--hl7-outcome", help="the HL7 validator's outcome to merge into the report")
    vc.add_argument(
        "--fail-on-error",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="exit 1 when errors are found (default: on)",
    )
    vc.set_defaults(func=_cmd_validate_center)

    en = sub.add_parser("encrypt", help="Crypt4GH-encrypt a center's bundles and NDJSON, with its manifest")
    en.add_argument("--ndjson", required=True, help="the center's NDJSON")
    en.add_argument("--index", help="the FHIR index naming the NDJSON's bundles (without --bundle-dir)")
    en.add_argument("--bundle-dir", help="read one file per bundle from this folder instead of the NDJSON")
    en.add_argument(
        "--fhir-summary", help="the FHIR stage's summary.json: its secret fingerprint goes into the manifest"
    )
    en.add_argument("--out-dir", required=True, help="<EGA root>/<use case>/<center>")
    en.add_argument("--manifest", required=True, help="the center's manifest TSV")
    en.add_argument("--use-case", required=True, help="use case (a folder level of the deposit)")
    en.add_argument("--center", required=True, help="center (a folder level of the deposit)")
    en.add_argument("--recipient", action="append", required=True, help="a recipient public key (repeat)")
    en.add_argument("--sender-key", help="sender private key (passphrase: ONCOFHIR_C4GH_PASSPHRASE)")
    en.add_argument("--threads", type=int, default=1, help="encryption threads")
    en.add_argument(
        "--privacy",
        help="the use case's privacy report: apply its generalisation plan to the deposit copy (with --dictionary)",
    )
    en.add_argument("--dictionary", help="the compiled dictionary (with --privacy)")
    en.add_argument("--generalised", help="write the per-rule counts of what was generalised here (JSON)")
    en.add_argument("--tables-dir", help="also encrypt the center's Parquet tables from this folder (docs/tables.md)")
    en.add_argument("--tables-out", help="with --tables-dir: <EGA root>/tables/<use case>/<center>")
    en.add_argument("--tables-manifest", help="with --tables-dir: the center's table manifest (TSV)")
    en.add_argument(
        "--views-dir",
        help="with --tables-dir and --privacy: the use case's views, run again over the generalised bundles (the "
        "deposit copy of the tables; the local tables keep the exact values)",
    )
    en.set_defaults(func=_cmd_encrypt)

    ve = sub.add_parser("verify", help="check encrypted deposit files against their manifest (decrypt with --sk)")
    ve.add_argument("manifest", help="results/ega/manifest.tsv or a per-center <center>.manifest.tsv")
    ve.add_argument("--root", help="folder the manifest's file column is relative to (default: from the manifest)")
    ve.add_argument("--sk", help="a recipient's private key: decrypt every file and compare with the plaintext sums")
    ve.add_argument(
        "--passphrase-env",
        default="ONCOFHIR_C4GH_PASSPHRASE",
        help="environment variable holding the private key's passphrase",
    )
    ve.set_defaults(func=_cmd_verify)

    dm = sub.add_parser("demo", help="write seeded synthetic REDCap exports for every use case")
    dm.add_argument("--dictionaries", default=DEFAULT_DICTIONARIES, help="folder of use-case dictionary folders")
    dm.add_argument("--out", required=True, help="output folder: <use_case>/<center>.csv")
    dm.add_argument("--seed", type=int, default=20241, help="random seed (same seed, same exports)")
    dm.add_argument("--records", type=int, default=40, help="records per center")
    dm.add_argument("--centers", type=int, default=2, help="centers per use case (2-7)")
    dm.set_defaults(func=_cmd_demo)

    ig = sub.add_parser("ig", help="the data model as a FHIR Implementation Guide: FSH, pages, SUSHI package")
    ig.add_argument("--dictionary", nargs="+", required=True, help="compiled dictionaries (one per use case)")
    ig.add_argument("--out", required=True, help="IG folder (input/fsh/, sushi-config.yaml, <use case>.md/.html)")
    ig.add_argument("--canonical", default="https://oncofhir.example.org/fhir", help="canonical base URL")
    ig.add_argument("--identifier-system", default="urn:oncofhir:pseudonym", help="Patient.identifier system")
    ig.add_argument("--package", help="compile with SUSHI into this FHIR package (.tgz); without it: FSH only")
    ig.add_argument("--sushi-home", help="where tools/sushi/install.sh put SUSHI (default ~/.cache/oncofhir/sushi)")
    ig.add_argument("--sushi-log", help="write SUSHI's output here")
    ig.add_argument(
        "--install-sushi",
        action="store_true",
        help="with --package: install SUSHI with npm on first use (tools/sushi/install.sh's installer, locked)",
    )
    ig.set_defaults(func=_cmd_ig)

    from .views.cli import add_parsers as add_views_parsers  # views, tables, cohort, query (docs/tables.md)

    add_views_parsers(sub)
    _add_privacy_commands(sub)
    from .server.cli import add_parsers as add_server_parsers  # load, server-verify (docs/fhir-server.md)

    add_server_parsers(sub, DEFAULT_DICTIONARIES, DEFAULT_ONTOLOGIES)
    return p


#: Exit code of a run interrupted by Ctrl-C (SIGINT): 128 + 2, as a shell reports it.
EXIT_INTERRUPTED = 130
#: Exit code of an internal error (a bug): EX_SOFTWARE of sysexits.h.
EXIT_INTERNAL = 70


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code. Ctrl-C (Snakemake sends SIGINT to every job when interrupted) ends with
    one line and code 130, never a traceback; cleanup (``finally`` blocks, temp files) still runs."""
    try:
        return run(build_parser().parse_args(argv))
    except KeyboardInterrupt:
        sys.__stderr__.write("oncofhir: interrupted\n")
        return EXIT_INTERRUPTED


def run(args: argparse.Namespace) -> int:
    """Run a parsed command: a user error or a full disk is one line and its code; anything else (a bug) is one
    line and exit 70, its traceback only in the ``--log`` file."""
    if args.log:
        return _run_logged(args)
    try:
        return args.func(args)
    except OncofhirError as exc:
        print(f"oncofhir: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        error = _resource_error(exc)
        if error is not None:
            print(f"oncofhir: error: {error}", file=sys.stderr)
            return error.exit_code
        print(f"oncofhir: internal error ({_one_line(exc)}); rerun with --log FILE for the details", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    """The exception's type and first line: never a traceback on the terminal."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def open_log(path: str) -> TextIO:
    """Open a stage's log for writing, owner-only (0600) like every plaintext output: a log holds what the stage
    printed and any traceback, which may name record ids. An existing log is truncated and made 0600 too, and its
    folder 0700 like every folder of plaintext (:func:`oncofhir.io_utils.private_parents`)."""
    from .io_utils import private_parents

    private_parents(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


#: Memory set aside at start and given back when the memory runs out, so that the one-line report still fits.
_RESERVE: bytearray | None = bytearray(4 << 20)


#: errno values of a path the user gave that cannot be used as asked: no permission, a read-only file system, a file
#: where a folder is needed or the reverse. A usage error naming the path (exit 2), not a bug.
_PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR})


def _resource_error(exc: BaseException, path: str | None = None) -> OncofhirError | None:
    """A full disk or quota (ENOSPC, EDQUOT) or an exhausted memory as one line (exit 5), a path that cannot be
    used (permission, read-only, file/folder mix-up) as a usage error (exit 2); None for anything else."""
    if isinstance(exc, MemoryError):  # first, and without an import: memory is short
        # The traceback keeps the failed stage's frames, and so whatever filled the memory, alive while the error
        # is reported: drop it, and the reserve, so that the message itself can be allocated and written.
        global _RESERVE
        _RESERVE = None
        exc.__traceback__ = None
        return ResourceError("out of memory: give the job more memory (or split the export) and rerun")
    if isinstance(exc, OSError):
        from .io_utils import no_space

        if exc.errno in _PATH_ERRNOS and exc.filename:
            return ConfigError(f"{exc.filename}: {exc.strerror}")
        return no_space(exc, path or "the output file system")
    return None


def _run_logged(args: argparse.Namespace) -> int:
    """Run with stdout and stderr in ``--log``; a user error also reaches the terminal as one readable line.

    A full disk can break the log itself (opening, writing or closing it): that too is one line on the terminal,
    exit code 5, never a traceback."""
    import contextlib
    import traceback

    terminal = sys.stderr

    def fail(error: OncofhirError) -> int:
        with contextlib.suppress(OSError):
            print(f"oncofhir: error: {error}", file=log)
        terminal.write(f"oncofhir: error: {error}\n(log: {args.log})\n")
        return error.exit_code

    try:
        log = open_log(args.log)
    except OSError as exc:
        error = _resource_error(exc, args.log)
        if error is None:
            raise
        terminal.write(f"oncofhir: error: {error}\n")
        return error.exit_code
    code = None
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                code = args.func(args)
            except OncofhirError as exc:
                code = fail(exc)
            except KeyboardInterrupt:
                with contextlib.suppress(OSError):
                    print("oncofhir: interrupted", file=log)
                raise
            except Exception as exc:
                error = _resource_error(exc)  # outputs written through io_utils name their file themselves
                if error is not None:
                    code = fail(error)
                else:
                    with contextlib.suppress(OSError):
                        traceback.print_exc(file=log)
                    terminal.write(f"oncofhir: internal error, see {args.log}\n")
                    code = EXIT_INTERNAL
    finally:
        try:
            log.close()
        except OSError as exc:  # the log's last block could not be written
            error = _resource_error(exc, args.log)
            if error is None or code is None:
                raise
            if code == 0:
                terminal.write(f"oncofhir: error: {error}\n")
                code = error.exit_code
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
