# Shared set-up: configuration and centers sheet validation, input functions, wildcard constraints.

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import min_version, validate

from oncofhir import workflow_config as wfconfig
from oncofhir.deposit.keys import load_private_key, load_recipients
from oncofhir.deposit.pseudonym import load_secret
from oncofhir.errors import ConfigError
from oncofhir.ig.settings import check_ig_config

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
        wfconfig.check_config(config, _schema(schemas / "config.schema.yaml"), sources)
        validate(config, str(schemas / "config.schema.yaml"))  # fills in the defaults
        resolved = wfconfig.resolve_config_paths(
            config, sources, cwd, Path(DEFAULT_CONFIGFILE).resolve().parent
        )
        wfconfig.check_input_paths(config, resolved)
        check_ig_config(config)
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
        _stop(exc)


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
        f"{RESULTS}/report/unclaimed_groups.tsv",
        f"{RESULTS}/qc/index.html",
        *get_ig_package(),
        *per_center(f"{RESULTS}/validation/{{use_case}}/{{center}}/summary.json"),
    ]


def ig_dictionaries():
    """The compiled dictionaries of every configured use case: what the IG is generated from."""
    return [f"{RESULTS}/dictionaries/{u}.json" for u in USE_CASES]


def get_ig_package(wildcards=None):
    """The IG package when ig.enabled (the HL7 validator validates against it); nothing otherwise."""
    return [f"{RESULTS}/ig/package.tgz"] if config["ig"]["enabled"] else []


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
