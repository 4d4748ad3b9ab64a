"""``oncofhir`` command line: every workflow stage, usable without Snakemake.

Exit codes: 0 success, 1 internal error, 2 usage or configuration, 3 dictionary, 4 input data, 130 interrupted
(Ctrl-C).
User errors print one readable message (file, row, column, value), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from . import __version__
from .errors import OncofhirError

DEFAULT_ONTOLOGIES = "resources/ontologies"


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
        args.dictionary, args.export, args.records, args.rejects, args.report, require_complete=args.require_complete
    )
    print(
        f"{args.export}: {report['rows_in']} rows, {report['records']} records, {report['rejected']} rejected; "
        f"unknown columns: {', '.join(report['unknown_columns']) or 'none'}; "
        f"missing columns: {', '.join(report['missing_columns']) or 'none'}"
    )
    return 0


def _cmd_qc(args: argparse.Namespace) -> int:
    import yaml

    from .qc import stage_qc

    weights = yaml.safe_load(args.weights) if args.weights else None
    minimums = yaml.safe_load(args.min_type_scores) if args.min_type_scores else None
    summary = stage_qc(
        args.dictionary,
        args.records,
        args.out_dir,
        weights=weights,
        min_record_score=args.min_record_score,
        min_type_scores=minimums,
        center=args.center,
        no_checks=args.no_checks,
    )
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_fhir(args: argparse.Namespace) -> int:
    from .deposit.pseudonym import Pseudonymizer, load_secret
    from .pipeline import stage_fhir

    pseudonymizer = None if args.no_pseudonyms else Pseudonymizer(load_secret(allow_demo=not args.refuse_demo_secret))

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
    )
    print(json.dumps(summary, sort_keys=True))
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
    )
    print(f"{summary['line']} ({summary['seconds']} s, {summary['bundles_per_second']} bundles/s)")
    return 0


def _cmd_encrypt(args: argparse.Namespace) -> int:
    """The workflow's encrypt stage: a center's bundles (NDJSON lines, named by the index) and NDJSON to .c4gh."""
    from .deposit.encrypt import stage_encrypt

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
    )
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """Check a deposit manifest against the encrypted files (and, with --sk, decrypt and compare each)."""
    from .deposit.manifest import read_manifest, verify

    problems = verify(args.manifest, root=args.root, private_key=args.sk, passphrase_env=args.passphrase_env)
    files = len(read_manifest(args.manifest))
    how = "decrypted and compared" if args.sk else "checked (sizes, md5, sha256 of the encrypted files)"
    for problem in problems:
        print(f"{args.manifest}: {problem}")
    if problems:
        print(f"oncofhir verify: {len(problems)} problem(s) in {files} file(s)", file=sys.stderr)
        return 1
    print(f"oncofhir verify: {files} file(s) {how}: all match {args.manifest}")
    return 0


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
    )
    print(json.dumps(info, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    p = argparse.ArgumentParser(prog="oncofhir", description=__doc__.splitlines()[0])
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
    comp.add_argument("directory")
    comp.add_argument("-o", "--output", required=True)
    comp.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES)
    comp.set_defaults(func=_cmd_compile)

    ing = sub.add_parser("ingest", help="read a center's REDCap export against a compiled dictionary")
    ing.add_argument("--dictionary", required=True, help="compiled dictionary JSON")
    ing.add_argument("--export", required=True, help="REDCap raw-data CSV export")
    ing.add_argument("--records", required=True, help="output: normalised records CSV")
    ing.add_argument("--rejects", required=True, help="output: rejected rows TSV")
    ing.add_argument("--report", required=True, help="output: ingest report JSON")
    ing.add_argument("--require-complete", action="store_true", help="reject records whose form is not Complete")
    ing.set_defaults(func=_cmd_ingest)

    qc = sub.add_parser("qc", help="score data quality (the paper's Table 2), write the drill-down and the gate")
    qc.add_argument("--dictionary", required=True, help="compiled dictionary JSON")
    qc.add_argument("--records", required=True, help="normalised records CSV from `oncofhir ingest`")
    qc.add_argument("--out-dir", required=True)
    qc.add_argument("--center", required=True, help="center id shown in the report")
    qc.add_argument("--weights", help="YAML/JSON mapping check type -> weight (default: the paper's Table 2)")
    qc.add_argument("--min-record-score", type=float, default=0.0, help="gate: minimum record score (0-100)")
    qc.add_argument("--min-type-scores", help="gate: YAML/JSON mapping check type -> minimum pass rate (0-100)")
    qc.add_argument("--no-checks", choices=["renormalise", "full_credit"], default="renormalise")
    qc.set_defaults(func=_cmd_qc)

    fh = sub.add_parser("fhir", help="build one FHIR R4B bundle per record")
    fh.add_argument("--dictionary", required=True)
    fh.add_argument("--records", required=True)
    fh.add_argument("--ingest-rejects", required=True)
    fh.add_argument("--ingest-report", required=True)
    fh.add_argument("--out-dir", help="folder for one <patient>.json file per bundle (default: none, NDJSON only)")
    fh.add_argument("--ndjson", required=True)
    fh.add_argument("--index", required=True)
    fh.add_argument("--rejects", required=True)
    fh.add_argument("--summary", required=True)
    fh.add_argument(
        "--identifier-system", help="Patient.identifier system (default urn:oncofhir:pseudonym, or :record-id)"
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
    fh.set_defaults(func=_cmd_fhir)

    va = sub.add_parser("validate", help="validate bundles (structure, invariants, references, terminology, model)")
    va.add_argument("--use-case", required=True, help="use case whose dictionary the bundles follow")
    va.add_argument("paths", nargs="+", help="bundle files (.json, .ndjson) or folders")
    va.add_argument("--format", choices=["text", "json"], default="text")
    va.add_argument("--dictionaries", default="resources/dictionaries")
    va.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES)
    va.set_defaults(func=_cmd_validate)

    cv = sub.add_parser("convert", help="dictionary folder + export -> bundles, in one step")
    cv.add_argument("dictionary_dir")
    cv.add_argument("export")
    cv.add_argument("--out", required=True)
    cv.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES)
    cv.set_defaults(func=_cmd_convert)

    vc = sub.add_parser("validate-center", help="the workflow's validate stage for one center (report files)")
    vc.add_argument("--dictionary", required=True, help="compiled dictionary JSON")
    vc.add_argument("--bundles", required=True, help="the center's NDJSON (or a folder of bundle files)")
    vc.add_argument("--out-dir", required=True, help="folder for issues.json, issues.tsv, summary.json")
    vc.add_argument("--center", required=True)
    vc.add_argument("--ontologies", default=DEFAULT_ONTOLOGIES)
    vc.add_argument("--hl7-outcome", help="the HL7 validator's outcome to merge into the report")
    vc.add_argument(
        "--fail-on-error", action=argparse.BooleanOptionalAction, default=True, help="exit 1 when errors are found"
    )
    vc.set_defaults(func=_cmd_validate_center)

    en = sub.add_parser("encrypt", help="Crypt4GH-encrypt a center's bundles and NDJSON, with its manifest")
    en.add_argument("--ndjson", required=True, help="the center's NDJSON")
    en.add_argument("--index", help="the FHIR index naming the NDJSON's bundles (without --bundle-dir)")
    en.add_argument("--bundle-dir", help="read one file per bundle from this folder instead of the NDJSON")
    en.add_argument("--out-dir", required=True, help="<EGA root>/<use case>/<center>")
    en.add_argument("--manifest", required=True, help="the center's manifest TSV")
    en.add_argument("--use-case", required=True)
    en.add_argument("--center", required=True)
    en.add_argument("--recipient", action="append", required=True, help="a recipient public key (repeat)")
    en.add_argument("--sender-key", help="sender private key (passphrase: ONCOFHIR_C4GH_PASSPHRASE)")
    en.add_argument("--threads", type=int, default=1)
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
    dm.add_argument("--dictionaries", default="resources/dictionaries")
    dm.add_argument("--out", required=True)
    dm.add_argument("--seed", type=int, default=20241)
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
    ig.set_defaults(func=_cmd_ig)
    return p


#: Exit code of a run interrupted by Ctrl-C (SIGINT): 128 + 2, as a shell reports it.
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code. Ctrl-C (Snakemake sends SIGINT to every job when interrupted) ends with
    one line and code 130, never a traceback; cleanup (``finally`` blocks, temp files) still runs."""
    try:
        args = build_parser().parse_args(argv)
        if not args.log:
            try:
                return args.func(args)
            except OncofhirError as exc:
                print(f"oncofhir: error: {exc}", file=sys.stderr)
                return exc.exit_code
        return _run_logged(args)
    except KeyboardInterrupt:
        sys.__stderr__.write("oncofhir: interrupted\n")
        return EXIT_INTERRUPTED


def open_log(path: str) -> TextIO:
    """Open a stage's log for writing, owner-only (0600) like every plaintext output: a log holds what the stage
    printed and any traceback, which may name record ids. An existing log is truncated and made 0600 too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def _run_logged(args: argparse.Namespace) -> int:
    """Run with stdout and stderr in ``--log``; a user error also reaches the terminal as one readable line."""
    import contextlib
    import traceback

    terminal = sys.stderr
    with open_log(args.log) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            return args.func(args)
        except OncofhirError as exc:
            print(f"oncofhir: error: {exc}", file=log)
            terminal.write(f"oncofhir: error: {exc}\n(log: {args.log})\n")
            return exc.exit_code
        except KeyboardInterrupt:
            print("oncofhir: interrupted", file=log)
            raise
        except Exception:
            traceback.print_exc(file=log)
            terminal.write(f"oncofhir: internal error, see {args.log}\n")
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
