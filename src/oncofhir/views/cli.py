"""The ``oncofhir views|tables|cohort|query`` commands (registered by oncofhir.cli)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DEFAULT_DB = "results/tables/cohort.duckdb"


def _cmd_views(args: argparse.Namespace) -> int:
    from ..dictionary.compiled import load_compiled
    from .generate import write_views

    paths = write_views(load_compiled(args.dictionary), args.out_dir)
    print(f"{len(paths)} ViewDefinition(s) -> {args.out_dir}: {', '.join(p.stem for p in paths)}")
    return 0


def _cmd_tables(args: argparse.Namespace) -> int:
    from .stage import keep_pandas_out, stage_tables

    keep_pandas_out()

    if args.decrypt:
        return _decrypt(args)
    if args.paths:
        raise ConfigError("tables: file arguments are only for --decrypt")
    if not (args.dictionary and args.views_dir and args.ndjson and args.out_dir and args.center):
        raise ConfigError("tables: --dictionary, --views-dir, --ndjson, --out-dir and --center are required")
    if args.encrypt_dir and not (args.manifest and args.recipient):
        raise ConfigError("tables: --encrypt-dir needs --manifest and --recipient")
    out = stage_tables(
        args.dictionary,
        args.views_dir,
        args.ndjson,
        args.out_dir,
        args.center,
        root=args.root,
        records=args.records,
        index=args.index,
        roundtrip_json=args.roundtrip_json,
        roundtrip_tsv=args.roundtrip_tsv,
    )
    if args.encrypt_dir:
        from .deposit import encrypt_tables

        generalise = (args.dictionary, args.privacy, args.views_dir, args.ndjson) if args.privacy else None
        out["deposit"] = encrypt_tables(
            args.out_dir,
            args.encrypt_dir,
            args.manifest,
            use_case=out["use_case"],
            center=args.center,
            recipients=args.recipient,
            sender_key=args.sender_key,
            fhir_summary=args.fhir_summary,
            generalise=generalise,
        )
        if generalise is not None:
            out["generalised"] = out["deposit"].pop("generalised")
    print(json.dumps(out, sort_keys=True))
    rt = out.get("roundtrip")
    if rt and not rt["passed"]:
        lost = ", ".join(f["variable"] for f in rt["failures"])
        print(f"round trip FAILED for {args.center}: values lost or changed in {lost}", file=sys.stderr)
    return 0


def _decrypt(args: argparse.Namespace) -> int:
    from .deposit import decrypt_tables

    if not args.sk or not args.paths:
        raise ConfigError("tables --decrypt: give --sk KEY and the downloaded files or folders")
    out = decrypt_tables(args.paths, args.sk, args.out_dir or "tables", args.passphrase_env)
    print(f"{out['files']} table file(s) decrypted; {out['tables']} table(s) in {out['database']}")
    return 0


def _cmd_cohort(args: argparse.Namespace) -> int:
    from .tables import table_files, write_database

    if args.from_deposit:
        from .deposit import cohort_from_deposit

        if args.tables_dir or not args.sk:
            raise ConfigError("cohort --from-deposit: give --sk KEY and the encrypted table folders, not --tables-dir")
        out = cohort_from_deposit(args.from_deposit, args.sk, args.out, args.passphrase_env)
        print(f"{args.out}: {out['tables']} table(s) with the rows of {out['files']} decrypted table file(s)")
        return 0
    if not args.tables_dir:
        raise ConfigError("cohort: give --tables-dir, or --from-deposit with --sk")
    if not Path(args.tables_dir).is_dir():  # else an empty database, as if there were no tables
        raise ConfigError(f"--tables-dir {args.tables_dir}: folder not found")
    views = table_files(args.tables_dir)
    n = write_database(args.tables_dir, views, args.out)
    print(f"{args.out}: {n} table(s) over {sum(len(v) for v in views.values())} Parquet file(s)")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from .tables import query

    names, rows = query(args.db, args.sql)
    writer = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    try:
        writer.writerow(names)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error; nothing more to print
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def add_parsers(sub: Any) -> None:
    """Add the commands to the ``oncofhir`` sub-parsers."""
    vw = sub.add_parser("views", help="write a use case's SQL-on-FHIR v2 ViewDefinitions from its compiled dictionary")
    vw.add_argument("--dictionary", required=True, help="compiled dictionary (JSON)")
    vw.add_argument("--out-dir", required=True, help="folder for <view name>.json")
    vw.set_defaults(func=_cmd_views)

    tb = sub.add_parser("tables", help="run the views over a center's NDJSON into Parquet, and the round trip")
    tb.add_argument("--dictionary", help="compiled dictionary (JSON)")
    tb.add_argument("--views-dir", help="folder of ViewDefinitions (oncofhir views)")
    tb.add_argument("--ndjson", help="the center's bundles, one per line")
    tb.add_argument("--out-dir", help="folder for <view name>.parquet (created 0700)")
    tb.add_argument("--center", help="center name (the tables' center column)")
    tb.add_argument("--root", help="folders from here down to --out-dir are made owner-only (default: --out-dir)")
    tb.add_argument("--records", help="the center's normalised records (for the round trip)")
    tb.add_argument("--index", help="the FHIR stage's index TSV (record id -> pseudonym, for the round trip)")
    tb.add_argument("--roundtrip-json", help="write the round trip's per-center report here")
    tb.add_argument("--roundtrip-tsv", help="write the round trip's per-variable counts here")
    tb.add_argument("--encrypt-dir", help="also encrypt the tables for the EGA into <EGA root>/tables/<uc>/<center>")
    tb.add_argument("--manifest", help="with --encrypt-dir: the center's table manifest (TSV)")
    tb.add_argument("--recipient", action="append", help="with --encrypt-dir: recipient public key (repeat)")
    tb.add_argument("--sender-key", help="with --encrypt-dir: sender private key (ONCOFHIR_C4GH_PASSPHRASE)")
    tb.add_argument(
        "--privacy",
        help="with --encrypt-dir: the use case's privacy report; the encrypted tables are built from the bundles "
        "generalised by its plan (the local tables keep the exact values)",
    )
    tb.add_argument(
        "--fhir-summary",
        help="with --encrypt-dir: the FHIR stage's summary.json, whose secret fingerprint goes into the manifest",
    )
    tb.add_argument(
        "--decrypt",
        action="store_true",
        help="instead: decrypt downloaded *.parquet.c4gh files (PATHS) into --out-dir (default tables/) with a "
        "cohort.duckdb over them",
    )
    tb.add_argument("--sk", help="with --decrypt: your Crypt4GH private key")
    tb.add_argument("--passphrase-env", help="with --decrypt: environment variable holding the key's passphrase")
    tb.add_argument("paths", nargs="*", help="with --decrypt: encrypted table files or folders holding them")
    tb.set_defaults(func=_cmd_tables)

    co = sub.add_parser(
        "cohort",
        help="write the cohort DuckDB database: views over every center's Parquet tables, or (--from-deposit) "
        "the rows of the encrypted tables",
    )
    co.add_argument("--tables-dir", help="folder holding <use case>/<center>/<view>.parquet")
    co.add_argument(
        "--from-deposit",
        nargs="+",
        metavar="PATH",
        help="instead: encrypted tables (*.parquet.c4gh, or folders holding them), decrypted in memory with --sk; "
        "the database then holds the rows (0600)",
    )
    co.add_argument("--sk", help="with --from-deposit: a recipient's Crypt4GH private key")
    co.add_argument("--passphrase-env", help="with --from-deposit: environment variable holding the key's passphrase")
    co.add_argument("--out", required=True, help="the database file (e.g. results/tables/cohort.duckdb)")
    co.set_defaults(func=_cmd_cohort)

    qu = sub.add_parser("query", help="run one SQL query on the cohort database; prints TSV")
    qu.add_argument("sql", help='e.g. "SELECT count(*) FROM uc7_patients"')
    qu.add_argument("--db", default=DEFAULT_DB, help="DuckDB database")
    qu.set_defaults(func=_cmd_query)
