# Shared set-up: configuration and centers sheet validation, input functions, wildcard constraints.

import json
import os
import shlex
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from oncofhir.deposit.keys import load_private_key, load_recipients
from oncofhir.deposit.pseudonym import load_secret
from oncofhir.errors import ConfigError

min_version("9.0")


validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"].rstrip("/")
DICTIONARIES = config["dictionaries"].rstrip("/")
ONTOLOGIES = config["ontologies"].rstrip("/")
DEMO = config["demo"]["folder"].rstrip("/")
ENV = "../../envs/oncofhir.yaml"


def _read_centers(path):
    """Read and validate the centers sheet; any problem stops the workflow before a job runs."""
    if not os.path.exists(path):
        raise WorkflowError(
            f"centers sheet '{path}' does not exist (config key 'centers')"
        )
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    missing = {"use_case", "center", "export"} - set(sheet.columns)
    if missing:
        raise WorkflowError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    validate(sheet, "../schemas/centers.schema.yaml")
    dupes = sheet[sheet.duplicated(["use_case", "center"], keep=False)]
    if len(dupes):
        rows = ", ".join(f"{u}/{c}" for u, c in zip(dupes.use_case, dupes.center))
        raise WorkflowError(f"{path}: duplicate (use_case, center) rows: {rows}")
    for line, row in enumerate(sheet.itertuples(index=False), start=2):
        folder = Path(DICTIONARIES) / row.use_case
        if not (folder / "mapping.yaml").exists():
            raise WorkflowError(
                f"{path}, line {line}: use case '{row.use_case}' has no dictionary "
                f"({folder}/mapping.yaml not found)"
            )
        is_demo = Path(row.export).resolve().is_relative_to(Path(DEMO).resolve())
        if not is_demo and not os.path.exists(row.export):
            raise WorkflowError(
                f"{path}, line {line}: export '{row.export}' of {row.use_case}/{row.center} does not exist"
            )
    if "dag" not in sheet.columns:
        sheet["dag"] = ""
    return sheet.set_index(["use_case", "center"], drop=False)


CENTERS = _read_centers(config["centers"])
DEPOSIT = config["deposit"]


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
    except ConfigError as exc:
        raise WorkflowError(str(exc)) from None


# Not while linting: Snakemake itself skips its envvars: check then (workflow.check_envvars), and a lint needs no
# secret or key. Every other mode (run, dry run, cluster) checks.
if workflow.check_envvars:
    _check_secrets_and_keys()


# The pseudonym secret (checked above with a fuller message): declared so cluster jobs receive it.
envvars:
    "ONCOFHIR_PSEUDONYM_KEY",


USE_CASES = sorted(set(CENTERS.use_case))


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


def get_report_site_files():
    """The pages of the run report and the QC, and every file they link to (rule report_site)."""
    per = [
        f"{RESULTS}/qc/{{use_case}}/{{center}}/report.html",
        f"{RESULTS}/qc/{{use_case}}/{{center}}/failures.tsv",
        f"{RESULTS}/qc/{{use_case}}/{{center}}/send_back.tsv",
        f"{RESULTS}/rejects/{{use_case}}/{{center}}.tsv",
        f"{RESULTS}/validation/{{use_case}}/{{center}}/issues.tsv",
    ]
    files = [
        f"{RESULTS}/report/index.html",
        f"{RESULTS}/report/run_summary.tsv",
        f"{RESULTS}/qc/index.html",
    ]
    for pattern in per:
        files += per_center(pattern)
    if DEPOSIT["enabled"]:
        files += [f"{RESULTS}/ega/manifest.tsv", *get_center_manifests()]
    return files


def get_final_outputs():
    """What `snakemake` with no target produces."""
    data = []
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
        f"{RESULTS}/report/site",
        f"{RESULTS}/report/unclaimed_groups.tsv",
        f"{RESULTS}/qc/index.html",
        *per_center(f"{RESULTS}/validation/{{use_case}}/{{center}}/summary.json"),
    ]


def get_hl7_outcome(wildcards):
    """The HL7 validator's outcome for a center when that optional stage is on; nothing otherwise."""
    if not config["validation"]["hl7_validator"]["enabled"]:
        return []
    return (
        f"{RESULTS}/validation/{wildcards.use_case}/{wildcards.center}/hl7_outcome.json"
    )
