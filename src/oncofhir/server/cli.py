"""``oncofhir load`` and ``oncofhir server-verify``: load centers' bundles into a FHIR server, count them back."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigError

#: A use case or center name, as the report's path takes it (the centers sheet allows no other).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: Defaults shared by the CLI and the workflow's ``fhir_server`` config (config/config.yaml).
DEFAULT_BATCH = 20
DEFAULT_IN_FLIGHT = 2
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 4


def read_token(name: str | None) -> str | None:
    """The bearer token from the environment variable ``name`` (never from an argument or a file); None without one.
    A named variable that is unset or empty is a usage error: a server expecting a token would refuse every
    request."""
    if not name:
        return None
    token = os.environ.get(name, "")
    if not token:
        raise ConfigError(f"the token's environment variable {name} (fhir_server.token_env, --token-env) is not set")
    return token


def _client(args: argparse.Namespace) -> Any:
    from .client import FhirClient

    if args.timeout <= 0 or args.retries < 0:
        raise ConfigError("--timeout must be > 0 and --retries >= 0")
    return FhirClient(args.server, token=read_token(args.token_env), timeout=args.timeout, retries=args.retries)


def _searches(use_case: str, args: argparse.Namespace) -> list[Any]:
    """The use case's clinical searches, from --dictionary (compiled JSON) or the dictionary folder."""
    from ..dictionary import compile_dictionary, load_compiled
    from .searches import clinical_searches

    for path in args.dictionary or ():
        dd = load_compiled(path)
        if dd.use_case == use_case:
            return clinical_searches(use_case, dd.resources)
    folder = Path(args.dictionaries) / use_case
    if not folder.is_dir():
        return []
    return clinical_searches(use_case, compile_dictionary(folder, args.ontologies).resources)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """A report, owner-only (it names the pseudonymised resource ids of refused bundles)."""
    from ..io_utils import write_private

    write_private(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def cmd_load(args: argparse.Namespace) -> int:
    """Load each center (``<use case>/<center>.ndjson``); one line per center; exit 1 if any failed."""
    from .load import load_center

    if args.batch < 1 or args.in_flight < 1:
        raise ConfigError("--batch and --in-flight must be at least 1")
    client = _client(args)
    reports = []
    for ndjson in args.ndjson:
        path = Path(ndjson)
        use_case, center = path.parent.name, path.name.removesuffix(".ndjson")
        if not (_NAME.match(use_case) and _NAME.match(center) and path.name.endswith(".ndjson")):
            raise ConfigError(
                f"{ndjson}: expected <use case>/<center>.ndjson (letters, digits, . _ -), as in results/fhir"
            )
        report = load_center(
            path, use_case, center, client, _searches(use_case, args), batch=args.batch, in_flight=args.in_flight
        )
        write_json(Path(args.report_dir) / use_case / f"{center}.json", report)
        print(report["line"], file=sys.stdout if report["status"] == "loaded" else sys.stderr, flush=True)
        reports.append(report)
    failed = [r for r in reports if r["status"] != "loaded"]
    verified = True
    if args.verify:
        from .verify import verify_server

        result = verify_server(client, reports)
        write_json(args.verify, result)
        print(result["line"], file=sys.stdout if result["passed"] else sys.stderr)
        verified = result["passed"]
    return 1 if args.fail_on_error and (failed or not verified) else 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Count by FHIR search what the load reports say was loaded; exit 1 when a count differs."""
    from .verify import verify_server

    reports = []
    for path in args.reports:
        try:
            reports.append(orjson.loads(Path(path).read_bytes()))
        except (OSError, orjson.JSONDecodeError) as exc:
            from ..errors import InputDataError

            raise InputDataError(f"not a load report: {exc}", path=str(path)) from None
    result = verify_server(_client(args), reports)
    result["line"] = f"{result['line']} (centers not fully loaded: {sum(r['status'] != 'loaded' for r in reports)})"
    write_json(args.out, result)
    print(result["line"], file=sys.stdout if result["passed"] else sys.stderr)
    return 1 if args.fail_on_error and not result["passed"] else 0


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", required=True, help="the FHIR server's base URL, e.g. http://127.0.0.1:8090/fhir")
    p.add_argument(
        "--token-env",
        help="name of the environment variable holding a bearer token (the token itself is never an argument)",
    )
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for one answer")
    p.add_argument(
        "--retries", type=int, default=DEFAULT_RETRIES, help="tries again after 429, 5xx, lost connection, timeout"
    )
    p.add_argument(
        "--fail-on-error",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="exit 1 when a center failed or a count differs (default: on)",
    )


def add_parsers(sub: argparse._SubParsersAction, dictionaries: str, ontologies: str) -> None:
    """The ``load`` and ``server-verify`` subcommands."""
    lo = sub.add_parser(
        "load",
        help="load centers' bundles into a FHIR server as transactions (PUT by id), one report per center",
    )
    lo.add_argument("ndjson", nargs="+", help="centers' NDJSON files, <use case>/<center>.ndjson (results/fhir/...)")
    _server_options(lo)
    lo.add_argument("--report-dir", default="results/server", help="load reports go to <dir>/<use case>/<center>.json")
    lo.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="patients' bundles per transaction")
    lo.add_argument("--in-flight", type=int, default=DEFAULT_IN_FLIGHT, help="transactions on the wire at once")
    lo.add_argument("--dictionary", nargs="+", help="compiled dictionaries (JSON), for the clinical searches")
    lo.add_argument("--dictionaries", default=dictionaries, help="dictionary folders, when no --dictionary")
    lo.add_argument("--ontologies", default=ontologies, help="ontology tables folder")
    lo.add_argument("--verify", help="then count everything back by FHIR search; write that report here (JSON)")
    lo.set_defaults(func=cmd_load)
    ve = sub.add_parser("server-verify", help="count loaded resources by FHIR search against the load reports")
    ve.add_argument("reports", nargs="+", help="load reports (results/server/<use case>/<center>.json)")
    _server_options(ve)
    ve.add_argument("--out", required=True, help="the query check's report (JSON)")
    ve.set_defaults(func=cmd_verify)
