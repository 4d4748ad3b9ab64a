# Shared set-up: configuration and centers sheet validation, input functions, wildcard constraints.

import functools
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.logging import logger
from snakemake.utils import min_version, validate

from oncofhir import workflow_config as wfconfig
from oncofhir.deposit.keys import load_private_key, load_recipients
from oncofhir.deposit.pseudonym import changed_secret, load_secret
from oncofhir.dictionary.preflight import preflight
from oncofhir.errors import ConfigError, DictionaryError
from oncofhir.ig.settings import DECISION_VARIABLE, plan_ig, share_decision
from oncofhir.io_utils import prepare_results
from oncofhir.views.cohort_key import COHORT_PASSPHRASE_ENV, check_cohort_key

min_version("9.0")


# ---- Configuration and centers sheet (issue #10 items 1, 5, 7; #11 item 5): oncofhir.workflow_config ----------
# Every check runs at parse time and stops with one line (exit code 2) naming the file, line, key or column: never
# a traceback, never the whole schema. Paths: see oncofhir/workflow_config.py and config/README.md.


def _stop(exc):
    """A configuration error: one line on stderr and exit code 2 (the CLI's code for configuration)."""
    print(f"oncofhir: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2)


def _load_configuration():
    """Check the merged config, resolve its paths (relative to the file naming them), read the centers sheet."""
    cwd = Path.cwd()
    sources = wfconfig.config_sources(
        DEFAULT_CONFIGFILE,
        workflow.overwrite_configfiles,
        workflow.config_settings.config,
        cwd,
    )
    schemas = Path(workflow.basedir, "workflow", "schemas")
    try:
        schema = _schema(schemas / "config.schema.yaml")
        wfconfig.coerce_cli_config(config, schema, sources)
        wfconfig.check_config(config, schema, sources)
        validate(config, str(schemas / "config.schema.yaml"))  # fills in the defaults
        resolved = wfconfig.resolve_config_paths(
            config, sources, cwd, Path(DEFAULT_CONFIGFILE).resolve().parent
        )
        wfconfig.check_input_paths(config, resolved)
        wfconfig.check_thresholds(config, sources)
        demo = config["demo"]["folder"]  # normalised by resolve_config_paths
        centers = wfconfig.read_centers(
            config["centers"],
            _schema(schemas / "centers.schema.yaml"),
            config["dictionaries"],
            demo,
            cwd,
        )
        if config["deposit"]["demo_keys"]:
            source = wfconfig.source_of(sources, ("deposit", "demo_keys"))
            wfconfig.check_demo_keys(
                centers, config["centers"], demo, f"set in {wfconfig.describe(source)}"
            )
    except ConfigError as exc:
        _stop(exc)
    sheet = pd.DataFrame(
        [[c.use_case, c.center, c.export, c.dag, c.description] for c in centers],
        columns=["use_case", "center", "export", "dag", "description"],
    )
    return sheet.set_index(["use_case", "center"], drop=False)


def _schema(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


CENTERS = _load_configuration()
RESULTS = config["results"].rstrip("/")
DICTIONARIES = config["dictionaries"]
ONTOLOGIES = config["ontologies"]
DEMO = config["demo"]["folder"]
ENV = "../../envs/oncofhir.yaml"
DEPOSIT = config["deposit"]
# A recipient's private key to build cohort.duckdb from the deposit with (docs/tables.md); empty: none.
COHORT_SK = config["tables"]["cohort"]["sk"]


def _check_secrets_and_keys():
    """The secret and every configured key are checked now, so a bad one stops the run before any job."""
    try:
        load_secret(allow_demo=DEPOSIT["demo_keys"])
        if DEPOSIT["enabled"]:
            if DEPOSIT["recipients"]:
                load_recipients(DEPOSIT["recipients"])
            elif not DEPOSIT["demo_keys"]:
                raise ConfigError(
                    "deposit.enabled is true but deposit.recipients is empty: list the recipients' public key "
                    "files, EGA's ingestion key first (or set deposit.demo_keys: true for a demo)"
                )
            if DEPOSIT["sender_key"]:
                load_private_key(DEPOSIT["sender_key"])
            if COHORT_SK and DEPOSIT["temp_plaintext"]:
                check_cohort_key(COHORT_SK, DEPOSIT["recipients"])
    except ConfigError as exc:
        _stop(exc)


# Not while linting: Snakemake itself skips its envvars: check then (workflow.check_envvars), and a lint needs no
# secret or key. Every other mode (run, dry run, cluster) checks.
if workflow.check_envvars:
    _check_secrets_and_keys()


def _plan_ig():
    """Build the IG or not (ig.enabled auto/true/false, oncofhir.ig.settings), decided once by the main process
    from what the machine has installed and handed to the jobs; its reason is one line of the log (and, when the IG
    is not built, of the run report)."""
    decided = None if workflow.is_main_process else os.environ.get(DECISION_VARIABLE)
    try:
        plan = plan_ig(config, decided=decided)
    except ConfigError as exc:
        _stop(exc)
    if workflow.is_main_process:
        share_decision(plan)
        if plan.line:
            logger.info(f"oncofhir: {plan.line}")
    return plan


IG = _plan_ig()


# The pseudonym secret (checked above with a fuller message) and the IG decision: declared so cluster jobs get them.
envvars:
    "ONCOFHIR_PSEUDONYM_KEY",
    DECISION_VARIABLE,


USE_CASES = sorted(set(CENTERS.use_case))


def _check_dictionaries():
    """Compile the use cases this run will compile, now: a bad dictionary stops the run before any job (exit 3)."""
    try:
        preflight(USE_CASES, DICTIONARIES, ONTOLOGIES, f"{RESULTS}/dictionaries")
    except DictionaryError as exc:
        print(f"oncofhir: dictionary error: {exc}", file=sys.stderr)
        raise SystemExit(3)


# Once, in the process that schedules: cluster and subprocess jobs re-read the Snakefile and need not repeat it.
if workflow.is_main_process:
    _check_dictionaries()


wildcard_constraints:
    use_case="|".join(USE_CASES),
    center="[A-Za-z0-9][A-Za-z0-9_-]*",


def _center(wildcards):
    return CENTERS.loc[(wildcards.use_case, wildcards.center)]


def get_export(wildcards):
    """The export the center's ingest reads: its own file, or its rows split out of a combined export."""
    row = _center(wildcards)
    if row.dag:
        return f"{RESULTS}/exports/{wildcards.use_case}/{wildcards.center}.csv"
    return row.export


def get_combined_export(wildcards):
    """The combined (all data access groups) export a center's rows are split from."""
    return _center(wildcards).export


def get_dag(wildcards):
    """The center's REDCap data access group in a combined export."""
    return _center(wildcards).dag


def split_reports():
    """Split reports of the centers read from combined exports (for the unclaimed-groups check)."""
    rows = CENTERS[CENTERS.dag != ""]
    return [
        f"{RESULTS}/exports/{u}/{c}.split.json"
        for u, c in zip(rows.use_case, rows.center)
    ]


def ontology_tables():
    """Every ontology table: a change to any code's display recompiles the dictionaries."""
    return [
        f"{ONTOLOGIES}/systems.yaml",
        *sorted(str(p) for p in Path(ONTOLOGIES).glob("*.tsv")),
    ]


def per_center(pattern):
    """Expand a per-(use case, center) path pattern over the centers sheet."""
    return [
        pattern.format(use_case=u, center=c)
        for u, c in zip(CENTERS.use_case, CENTERS.center)
    ]


def plaintext(path):
    """A plaintext patient-data output: temporary when the deposit is on and deposit.temp_plaintext is set."""
    return temp(path) if DEPOSIT["enabled"] and DEPOSIT["temp_plaintext"] else path


def get_recipient_keys(wildcards):
    """Recipient public keys: the demo pairs made at run time, then the configured ones (EGA's first)."""
    demo = [f"{RESULTS}/keys/ega.pub", f"{RESULTS}/keys/consortium.pub"]
    return [*(demo if DEPOSIT["demo_keys"] else []), *DEPOSIT["recipients"]]


def get_sender_key(wildcards):
    """The optional sender private key."""
    return [DEPOSIT["sender_key"]] if DEPOSIT["sender_key"] else []


def get_center_manifests():
    """Each center's deposit manifest when the deposit is on (the run report counts its files); none otherwise."""
    if not DEPOSIT["enabled"]:
        return []
    return per_center(f"{RESULTS}/ega/{{use_case}}/{{center}}.manifest.tsv")


def get_encrypt_table_inputs(wildcards):
    """What encrypt reads for the center's tables: the Parquet folder, and the views when the use case generalises
    (its tables' deposit copy is built again from the generalised bundles)."""
    uc, center = wildcards.use_case, wildcards.center
    inputs = {"tables": f"{RESULTS}/tables/{uc}/{center}"}
    if generalises(uc):
        inputs["views"] = f"{RESULTS}/views/{uc}"
    return inputs


def get_encrypt_table_args(wildcards, input, output):
    """encrypt's arguments for the center's tables (docs/tables.md)."""
    args = [
        f"--tables-dir {shlex.quote(input.tables)}",
        f"--tables-out {shlex.quote(output.tables_encrypted)}",
        f"--tables-manifest {shlex.quote(output.tables_manifest)}",
    ]
    if generalises(wildcards.use_case):
        args.append(f"--views-dir {shlex.quote(input.views)}")
    return " ".join(args)


def get_table_manifests():
    """The encrypted tables' manifests of every center (merged into ega/manifest.tsv), when the deposit is on."""
    if not DEPOSIT["enabled"]:
        return []
    return per_center(f"{RESULTS}/ega/tables/{{use_case}}/{{center}}.manifest.tsv")


def get_center_tables_root(wildcards, output):
    """results/tables, from a fhir job's table folder (results/tables/<uc>/<center>): made owner-only down from it."""
    return str(Path(output.tables).parent.parent)


def get_tables_root(wildcards, output):
    """results/tables: the folder of the cohort database."""
    return str(Path(output[0]).parent)


def get_roundtrips():
    """Each center's round-trip report (the run summary's roundtrip column)."""
    return per_center(f"{RESULTS}/roundtrip/{{use_case}}/{{center}}.json")


def cohort_source():
    """Where results/tables/cohort.duckdb comes from (docs/tables.md#tables-and-the-cohort-database).

    "local": views over the kept plaintext Parquet files (deposit off, or deposit.temp_plaintext false).
    "deposit": the rows of the encrypted tables, decrypted with a recipient's key (tables.cohort.sk, or the demo's
    consortium key): they are final outputs, so one changed center reruns only its jobs and this one, where
    depending on the temporary Parquet files would remake every center's.
    None: plaintext deleted and no key (real data without tables.cohort.sk): no cohort database.
    """
    if not DEPOSIT["enabled"] or not DEPOSIT["temp_plaintext"]:
        return "local"
    return "deposit" if get_cohort_key() else None


def get_cohort_key(wildcards=None):
    """The private key the cohort database is decrypted with: tables.cohort.sk, else the demo's consortium key."""
    if COHORT_SK:
        return COHORT_SK
    return f"{RESULTS}/keys/consortium.sec" if DEPOSIT["demo_keys"] else ""


def get_cohort_inputs(wildcards):
    """The cohort job's inputs: every center's Parquet folder, or its encrypted tables and the key."""
    if cohort_source() == "local":
        return {"tables": per_center(f"{RESULTS}/tables/{{use_case}}/{{center}}")}
    return {
        "encrypted": per_center(f"{RESULTS}/ega/tables/{{use_case}}/{{center}}"),
        "sk": get_cohort_key(),
    }


def get_cohort_args(wildcards, input, output):
    """The cohort command's source arguments (see cohort_source)."""
    if cohort_source() == "local":
        return f"--tables-dir {shlex.quote(get_tables_root(wildcards, output))}"
    folders = " ".join(shlex.quote(path) for path in input.encrypted)
    return (
        f"--sk {shlex.quote(input.sk)} --passphrase-env {COHORT_PASSPHRASE_ENV}"
        f" --from-deposit {folders}"
    )


def get_table_outputs():
    """The views, the Parquet tables when the plaintext is kept, and the cohort database (see cohort_source)."""
    out = [f"{RESULTS}/views/{uc}" for uc in USE_CASES]
    if cohort_source() == "local":
        out += per_center(f"{RESULTS}/tables/{{use_case}}/{{center}}")
    if cohort_source() is not None:
        out.append(f"{RESULTS}/tables/cohort.duckdb")
    return out


def get_report_pages():
    """The pages of rule report_file, the run report first, then the QC index and every center's QC page."""
    return [
        f"{RESULTS}/report/index.html",
        f"{RESULTS}/qc/index.html",
        *per_center(f"{RESULTS}/qc/{{use_case}}/{{center}}/report.html"),
        *get_ig_pages(),
    ]


def get_report_lists():
    """The lists the pages link to, as tables in rule report_file (failures.tsv is on the QC page already)."""
    per = [
        f"{RESULTS}/qc/{{use_case}}/{{center}}/send_back.tsv",
        f"{RESULTS}/rejects/{{use_case}}/{{center}}.tsv",
        f"{RESULTS}/validation/{{use_case}}/{{center}}/issues.tsv",
        f"{RESULTS}/roundtrip/{{use_case}}/{{center}}.tsv",  # the run report's round-trip column links to it
    ]
    files = [f"{RESULTS}/report/run_summary.tsv"]
    for pattern in per:
        files += per_center(pattern)
    # the run report's re-identification risk section links each use case's classes (local, as the whole report)
    files += [f"{RESULTS}/privacy/{u}.tsv" for u in USE_CASES]
    return files


def get_report_kept():
    """Files the pages link to that rule report_file names, with their row count, but does not copy (the deposit
    manifests)."""
    if not DEPOSIT["enabled"]:
        return []
    return [f"{RESULTS}/ega/manifest.tsv", *get_center_manifests()]


def get_final_outputs():
    """What `snakemake` with no target produces."""
    data = [*get_table_outputs()]
    if DEPOSIT["enabled"]:
        data.append(f"{RESULTS}/ega/manifest.tsv")
    if (
        not DEPOSIT["enabled"] or not DEPOSIT["temp_plaintext"]
    ):  # plaintext kept: NDJSON and per-patient files
        data += per_center(f"{RESULTS}/fhir/{{use_case}}/{{center}}.ndjson")
        data += per_center(f"{RESULTS}/fhir/{{use_case}}/{{center}}")
    return [
        *data,
        f"{RESULTS}/report/run_summary.tsv",
        f"{RESULTS}/report/index.html",
        f"{RESULTS}/report/report.html",
        f"{RESULTS}/report/unclaimed_groups.tsv",
        f"{RESULTS}/qc/index.html",
        *get_ig_package(),
        *per_center(f"{RESULTS}/validation/{{use_case}}/{{center}}/summary.json"),
        *get_server_reports(),
    ]


FHIR_SERVER = config["fhir_server"]


def fhir_server_args(wildcards, load=True):
    """The server options of `oncofhir load` / `server-verify` from fhir_server (the token's variable name only)."""
    args = [
        f"--server {shlex.quote(FHIR_SERVER['url'])}",
        f"--timeout {FHIR_SERVER['timeout']}",
    ]
    if FHIR_SERVER["token_env"]:
        args.append(f"--token-env {shlex.quote(FHIR_SERVER['token_env'])}")
    if load:
        args.append(
            f"--batch {FHIR_SERVER['batch']} --in-flight {FHIR_SERVER['in_flight']}"
        )
    return " ".join(args)


def get_server_reports():
    """Each center's load report and the query check, when fhir_server.enabled (the run report shows them)."""
    if not FHIR_SERVER["enabled"]:
        return []
    return [
        *per_center(f"{RESULTS}/server/{{use_case}}/{{center}}.json"),
        f"{RESULTS}/server/verify.json",
    ]


def ig_dictionaries():
    """The compiled dictionaries of every configured use case: what the IG is generated from."""
    return [f"{RESULTS}/dictionaries/{u}.json" for u in USE_CASES]


def get_ig_pages():
    """The data-model pages the run report links to when the IG is built (one per use case); nothing otherwise."""
    if not IG.build:
        return []
    return [f"{RESULTS}/ig/{u}.html" for u in USE_CASES]


def get_ig_package(wildcards=None):
    """The IG package when it is built (the HL7 validator validates against it); nothing otherwise."""
    return [f"{RESULTS}/ig/package.tgz"] if IG.build else []


def get_hl7_outcome(wildcards):
    """The HL7 validator's outcome for a center when that optional stage is on; nothing otherwise."""
    if not config["validation"]["hl7_validator"]["enabled"]:
        return []
    return (
        f"{RESULTS}/validation/{wildcards.use_case}/{wildcards.center}/hl7_outcome.json"
    )


def fhir_definitions_digest():
    """SHA-256 of the vendored FHIR definitions validate-center reads (resources/fhir/), as a parameter: a changed
    definition reruns validation, while no input names the checkout's absolute path (a moved or copied finished
    run stays complete, issue #10 item 4)."""
    digest = hashlib.sha256()
    for name in ("r4b-definitions.json", "fhir.schema.json", "ucum.json"):
        digest.update(Path(workflow.basedir, "resources", "fhir", name).read_bytes())
    return digest.hexdigest()


# ---- Faults (docs/deposit.md, docs/output.md): one secret per deposit; no stale plaintext temp files. ----------
def _forcing_fhir():
    """Whether this run reruns every center's FHIR stage (--forcerun fhir, -R fhir, --forceall)."""
    settings = workflow.dag_settings
    if settings is not None:
        return settings.forceall or "fhir" in settings.forcerun
    # Snakemake hands the command line's DAG settings to the workflow only after parsing the Snakefile
    from snakemake.cli import get_argument_parser

    try:
        args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    except SystemExit:
        return False
    return bool(args.forceall) or "fhir" in (args.forcerun or ())


def _check_secret_unchanged():
    """A secret other than the one recorded in results/ stops the run before any job, unless every center's FHIR
    stage is rerun. Only in the main process: cluster jobs run while the summaries change.
    """
    summaries = per_center(f"{RESULTS}/fhir/{{use_case}}/{{center}}.summary.json")
    problem = changed_secret(load_secret(allow_demo=DEPOSIT["demo_keys"]), summaries)
    if problem and not _forcing_fhir():
        _stop(problem)


if workflow.check_envvars and workflow.is_main_process:
    _check_secret_unchanged()


onstart:
    # results/ owner-only and marked (plaintext folders below it are made 0700), and temp files of killed jobs removed
    prepare_results(RESULTS)


def _refused_exports():
    """One line per center whose export its ingest job refused (ingest.on_refused: report), from the reports."""
    lines = []
    for uc, center in CENTERS.index:
        summary = Path(RESULTS, "ingest", uc, center, "report.json")
        if summary.is_file():
            ingested = json.loads(summary.read_text(encoding="utf-8"))
            if ingested.get("refused"):
                lines.append(
                    f"oncofhir:   {uc}/{center}: {ingested['refused']} ({ingested['rows_in']} rows in "
                    f"{summary.parent / 'rejects.tsv'})"
                )
    return lines


def note_no_cohort():
    """Real data without tables.cohort.sk: the plaintext tables are deleted once encrypted and the workflow holds no
    key to the deposit, so it writes no cohort database; said once, at the end (onsuccess, below).
    """
    if cohort_source() is None:
        print(
            f"oncofhir: no {RESULTS}/tables/cohort.duckdb (plaintext tables deleted once encrypted): set "
            "tables.cohort.sk to a recipient's private key to build it from the deposit, or run oncofhir tables "
            "--decrypt (docs/tables.md)",
            file=sys.stderr,
        )


def _fail_on_refused():
    """A refused export does not stop the other centers (ingest.on_refused: report), but the run is no success."""
    refused = _refused_exports()
    if refused:
        head = (
            f"oncofhir: {len(refused)} of {len(CENTERS)} export(s) refused; every other center is done, "
            f"see {RESULTS}/report/index.html:"
        )
        print("\n".join([head, *refused]), file=sys.stderr)
        raise SystemExit(4)


# One handler (Snakemake keeps only the last one defined): notes first, then the refused exports' exit code.
onsuccess:
    note_no_cohort()
    _fail_on_refused()


# ---- Provenance (issue #16): the code version of each stage, a parameter so a code change reruns that stage -----
from oncofhir.provenance.code_version import stage_code_version


def code_version(rule_name):
    """The package version + a hash of the source files the rule runs (docs/provenance.md#code-versions)."""
    return stage_code_version(rule_name)


# ---- Re-identification risk (issue #16): per use case, over its centers; a gate before encrypt in block mode -----
def get_privacy_counts(wildcards):
    """Every center's counts of one use case."""
    rows = CENTERS[CENTERS.use_case == wildcards.use_case]
    return [
        f"{RESULTS}/privacy/{wildcards.use_case}/{c}.counts.tsv" for c in rows.center
    ]


# ---- QC pool checks (issue #15): per use case, from each center's pool_stats.json (written by its QC job) -------
QC_POOL = config["qc"]["pool"]


def get_pool_stats(wildcards):
    """Every center's pool statistics of one use case (a changed center reruns its QC and this use case's pool)."""
    rows = CENTERS[CENTERS.use_case == wildcards.use_case]
    return [
        f"{RESULTS}/qc/{wildcards.use_case}/{c}/pool_stats.json" for c in rows.center
    ]


@functools.cache
def generalises(use_case):
    """Whether the use case's mapping.yaml declares generalisation rules (privacy.generalise): its encryption then
    applies the privacy report's plan. Read from the source at parse time (the compiled dictionary is an output);
    an unreadable file is left to the dictionary rule to report."""
    try:
        with open(
            Path(DICTIONARIES, use_case, "mapping.yaml"), encoding="utf-8"
        ) as handle:
            mapping = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError):
        return False
    privacy = mapping.get("privacy") if isinstance(mapping, dict) else None
    return bool(isinstance(privacy, dict) and privacy.get("generalise"))


def get_privacy_decision(wildcards):
    """The use case's privacy report, which encrypt waits for when privacy.action is block or the use case
    generalises (the plan of rare codes needs every center's counts); otherwise a center encrypts on its own.
    """
    if config["privacy"]["action"] != "block" and not generalises(wildcards.use_case):
        return []
    return f"{RESULTS}/privacy/{wildcards.use_case}.json"


def get_generalise_inputs(wildcards):
    """The compiled dictionary, which encrypt reads to generalise (only for a use case with rules)."""
    if not generalises(wildcards.use_case):
        return []
    return f"{RESULTS}/dictionaries/{wildcards.use_case}.json"


def get_generalise_args(wildcards, input):
    """encrypt's --privacy/--dictionary when the use case generalises its deposit copy."""
    if not generalises(wildcards.use_case):
        return ""
    return f"--privacy {shlex.quote(input.privacy)} --dictionary {shlex.quote(input.dictionary)}"


# privacy.action: block: encrypt first checks the use case's decision (exit 4 and the reason when it is refused)
PRIVACY_GATE = (
    "oncofhir --log {log:q} privacy-gate {input.privacy:q} && "
    if config["privacy"]["action"] == "block"
    else ""
)


def get_generalisation_records():
    """Every center's counts of what generalisation changed in its deposit copy (the crate records them)."""
    if not DEPOSIT["enabled"]:
        return []
    return per_center(f"{RESULTS}/privacy/{{use_case}}/{{center}}.generalised.json")


def get_privacy_reports():
    """Every use case's privacy report (shown in the run report)."""
    return [f"{RESULTS}/privacy/{u}.json" for u in USE_CASES]
