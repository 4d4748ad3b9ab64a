"""The run's Provenance Run Crate (RO-Crate, Workflow Run Crate profiles 0.5): what produced a deposit.

Why: Snakemake tracks files for reruns, but a receiver gets nothing saying which oncofhir, dictionaries, code
tables and inputs produced the deposit. The crate (``results/ro-crate/ro-crate-metadata.json``) describes the
workflow (its Snakefile and rule files are copied beside it, with the git commit when there is one), every step run
(rule, use case, center, start and end, inputs and outputs with SHA-256), the dictionaries and code tables with
their versions, the configuration, the software versions, the reports and the encrypted deposit files with the
manifest's checksums.

What it never holds: a secret (secrets are environment variables, never config keys; the config is copied as
Snakemake resolved it), a record id, or the path of plaintext patient data (exports, normalised records, NDJSON,
per-patient bundles, the pseudonym index, rejects and record-level QC tables, the privacy counts): such inputs and
outputs are left out of the step runs, whether or not they were deleted.

Step runs come from Snakemake's own job records (``.snakemake/metadata``: rule, inputs, start and end time, one
record per output file), restricted to outputs that still exist under this run's results folder.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import platform
import re
import subprocess
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..io_utils import write_text_atomic
from .code_version import stage_code_version

PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
    "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
    "https://w3id.org/ro/wfrun/provenance/0.5": "Provenance Run Crate",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "Workflow RO-Crate",
}
CONTEXT = "https://w3id.org/ro/crate/1.1/context"

#: Paths (relative to the results folder) of plaintext patient data or record-level tables: never in the crate.
PRIVATE = re.compile(
    r"^(exports/|ingest/[^/]+/[^/]+/records\.csv$|fhir/[^/]+/[^/]+\.(ndjson|index\.tsv)$|fhir/[^/]+/[^/.]+(/|$)"
    r"|ingest/[^/]+/[^/]+/rejects\.tsv$|rejects/|qc/[^/]+/[^/]+/(records|failures|gate)\.tsv$|privacy/|tables/|keys/|logs/|benchmarks/|ro-crate/)"
)


README = """# oncofhir run: Provenance Run Crate

`ro-crate-metadata.json` describes this oncofhir run (RO-Crate 1.1, Workflow Run Crate and Provenance Run Crate
0.5): the workflow (`workflow/`, with its version and git commit), every step run (rule, use case, center, start
and end, inputs and outputs with SHA-256), the data dictionaries and code tables with their versions, the
configuration (`config.json`), the software versions, the reports and every encrypted deposit file with the
manifest's checksums. File paths are relative to this folder (`../ega/...` is the results folder's `ega/`).
It holds no secret, no record id and no path of plaintext patient data. See docs/provenance.md of oncofhir.
"""


@dataclass
class StepRun:
    """One job: its rule, wildcards, times and files (results-relative paths, or absolute for resources)."""

    rule: str
    use_case: str
    center: str
    start: float
    end: float
    inputs: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wildcards(relative: str, centers: dict[str, set[str]]) -> tuple[str, str]:
    """(use case, center) named by a results path (``qc/uc1/hospital_a/qc.json``), "" where there is none."""
    parts = relative.split("/")
    for i, part in enumerate(parts):
        name = part.split(".")[0]
        if name in centers:
            following = parts[i + 1].split(".")[0] if i + 1 < len(parts) else ""
            return name, following if following in centers[name] else ""
    return "", ""


def step_runs(metadata_dir: Path, results: Path, centers: dict[str, set[str]]) -> list[StepRun]:
    """The jobs of this results folder whose outputs still exist, from Snakemake's job records."""
    results = results.resolve()
    jobs: dict[tuple[str, int], StepRun] = {}
    if not metadata_dir.is_dir():
        return []
    for entry in os.scandir(metadata_dir):
        try:
            output = Path(base64.urlsafe_b64decode(entry.name + "=" * (-len(entry.name) % 4)).decode())
            record = json.loads(Path(entry.path).read_text(encoding="utf-8"))
        except (ValueError, OSError, UnicodeDecodeError):
            continue
        absolute = output if output.is_absolute() else Path.cwd() / output
        try:
            relative = absolute.resolve().relative_to(results).as_posix()
        except ValueError:
            continue  # another results folder's job
        if record.get("incomplete") or not absolute.exists() or record.get("rule") == "ro_crate":
            continue
        key = (record["rule"], record.get("job_hash", 0))
        if key not in jobs:
            use_case, center = _wildcards(relative, centers)
            jobs[key] = StepRun(record["rule"], use_case, center, record["starttime"], record["endtime"])
            jobs[key].inputs = {_relative(Path(i), results) for i in record.get("input", [])}
        jobs[key].outputs.add(relative)
    return sorted(jobs.values(), key=lambda j: (j.start, j.rule, j.use_case, j.center))


def _relative(path: Path, results: Path) -> str:
    absolute = (path if path.is_absolute() else Path.cwd() / path).resolve()
    try:
        return absolute.relative_to(results).as_posix()
    except ValueError:
        return str(absolute)


def software_versions(hl7_home: str | None) -> dict[str, str]:
    """Python, Snakemake, oncofhir, crypt4gh, fhir.resources (where installed) and the HL7 validator if enabled."""
    versions = {"Python": platform.python_version(), "oncofhir": __version__}
    for name in ("snakemake", "crypt4gh", "fhir.resources", "rocrate"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    if hl7_home:
        jars = sorted(Path(os.path.expanduser(hl7_home)).glob("validator_cli*.jar"))
        versions["HL7 FHIR validator"] = jars[-1].stem.removeprefix("validator_cli").strip("-_") if jars else "enabled"
    return versions


def git_commit(directory: Path) -> str | None:
    """The checkout's commit (with ``+dirty`` when it has changes), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _ref(identifier: str) -> dict[str, str]:
    return {"@id": identifier}


class _Graph:
    """The crate's entities by id, built with the ``rocrate`` library's model and written as its metadata file."""

    def __init__(self, out_dir: Path, results: Path) -> None:
        from rocrate.rocrate import ROCrate

        self.crate = ROCrate(gen_preview=False, version="1.1")  # the Workflow Run Crate profiles build on 1.1
        self.out_dir = out_dir
        self.results = results
        self.added: set[str] = set()

    def file_id(self, relative: str) -> str:
        """A results file's id relative to the crate folder (``results/ro-crate/``)."""
        return "../" + relative

    def add_file(self, relative: str, properties: dict[str, Any], digest: str | None = None) -> str | None:
        """A results file as a data entity with its SHA-256 (computed unless given); None if private or gone."""
        if PRIVATE.match(relative):
            return None
        path = self.results / relative
        identifier = self.file_id(relative)
        if identifier in self.added:  # not crate.get: a miss scans every entity (quadratic for 20,000 files)
            return identifier
        if digest is None:
            if path.is_dir():
                properties = {"@type": "Dataset", **properties}
                self.crate.add_dataset(None, identifier, properties=properties)
                self.added.add(identifier)
                return identifier
            if not path.is_file():
                return None
            digest = sha256(path)
            properties = {"contentSize": str(path.stat().st_size), **properties}
        self.crate.add_file(None, identifier, properties={"sha256": digest, **properties})
        self.added.add(identifier)
        return identifier


def build_crate(
    results: Path,
    out_dir: Path,
    workflow_dir: Path,
    metadata_dir: Path,
    config: dict[str, Any],
    centers: dict[str, set[str]],
    ontologies: Path,
    generalised: list[Path] | None = None,
) -> dict[str, int]:
    """Write ``out_dir``/ro-crate-metadata.json (and the workflow files beside it); returns counts for the log.

    ``generalised``: each center's counts of what generalisation changed in its deposit copy (the encrypt
    stage's ``privacy/<use case>/<center>.generalised.json``), recorded per rule and center."""
    from rocrate.model.contextentity import ContextEntity

    results = results.resolve()
    graph = _Graph(out_dir, results)
    crate = graph.crate
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    root = crate.root_dataset
    root["name"] = "oncofhir run"
    root["description"] = (
        "Provenance of an oncofhir run: REDCap exports to quality-scored, validated, pseudonymised and "
        "Crypt4GH-encrypted FHIR R4B bundles for the EGA."
    )
    root["datePublished"] = now
    root["license"] = _ref("https://spdx.org/licenses/Apache-2.0")
    for uri, name in PROFILES.items():
        profile = crate.add(ContextEntity(crate, uri, properties={"@type": "CreativeWork", "name": name}))
        root.append_to("conformsTo", profile)

    # The workflow: its Snakefile and rule files, copied beside the crate (code, no data)
    versions = software_versions(
        config["validation"]["hl7_validator"]["home"] if config["validation"]["hl7_validator"]["enabled"] else None
    )
    commit = git_commit(workflow_dir)
    workflow = crate.add_workflow(
        workflow_dir / "Snakefile",
        "workflow/Snakefile",
        main=True,
        lang="snakemake",
        lang_version=versions.get("snakemake"),
        properties={
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
            "name": "oncofhir",
            "version": __version__ + (f" (git {commit})" if commit else ""),
        },
    )
    workflow["conformsTo"] = _ref("https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE")
    readme = crate.add_file(
        None,
        "README.md",
        properties={"name": "About this crate", "encodingFormat": "text/markdown", "about": _ref("./")},
    )
    root.append_to("hasPart", readme)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "README.md", README)
    for smk in sorted((workflow_dir / "workflow" / "rules").glob("*.smk")):
        rules_file = crate.add_file(
            smk, f"workflow/rules/{smk.name}", properties={"name": f"rules {smk.name}", "encodingFormat": "text/plain"}
        )
        root.append_to("hasPart", rules_file)  # the workflow's hasPart lists its tools (Provenance Run Crate)
    software = []
    for name, version in versions.items():
        entity = crate.add(
            ContextEntity(
                crate,
                f"#software-{name.lower().replace(' ', '-').replace('.', '-')}",
                properties={"@type": "SoftwareApplication", "name": name, "softwareVersion": version},
            )
        )
        software.append(entity)
    workflow["softwareRequirements"] = [_ref(s.id) for s in software]
    engine = crate.get("#software-snakemake") or software[0]

    # Configuration (no secret is ever a config key), dictionaries and code tables with their versions
    config_file = crate.add_file(
        None,
        "config.json",
        properties={"name": "configuration as Snakemake resolved it", "encodingFormat": "application/json"},
    )
    write_text_atomic(out_dir / "config.json", json.dumps(config, indent=1, sort_keys=True, default=str) + "\n")
    objects = [config_file]
    for use_case in sorted(centers):
        compiled = results / "dictionaries" / f"{use_case}.json"
        if not compiled.is_file():
            continue
        dd = json.loads(compiled.read_text(encoding="utf-8"))
        identifier = graph.add_file(
            f"dictionaries/{use_case}.json",
            {
                "name": f"{use_case} data dictionary (compiled)",
                "version": dd["version"],
                "description": f"{dd['title']}; sources: "
                + ", ".join(f"{k} sha256 {v}" for k, v in dd["sources"].items()),
            },
        )
        if identifier:
            objects.append(crate.get(identifier))
    for table in [*sorted(ontologies.glob("*.tsv")), ontologies / "systems.yaml"]:
        entity = crate.add(
            ContextEntity(
                crate,
                f"#code-table-{table.name}",
                properties={"@type": "CreativeWork", "name": f"code table {table.name}", "sha256": sha256(table)},
            )
        )
        objects.append(entity)
    systems = _systems(results, centers)
    for alias, info in sorted(systems.items()):
        table = crate.get(f"#code-table-{alias}.tsv")
        if table is not None:
            table["url"] = info.get("uri")
            table["version"] = info.get("version") or "unversioned"

    # Steps: one tool and one HowToStep per rule; one CreateAction (+ ControlAction) per job
    runs = step_runs(metadata_dir, results, centers)
    tools: dict[str, Any] = {}
    controls = []
    for position, rule in enumerate(sorted({r.rule for r in runs})):
        tool = crate.add(
            ContextEntity(
                crate,
                f"#tool-{rule}",
                properties={
                    "@type": "SoftwareApplication",
                    "name": f"rule {rule}",
                    "softwareVersion": _code_version(rule),
                },
            )
        )
        step = crate.add(
            ContextEntity(
                crate,
                f"#step-{rule}",
                properties={
                    "@type": "HowToStep",
                    "name": rule,
                    "position": str(position),
                    "workExample": _ref(tool.id),
                },
            )
        )
        workflow.append_to("hasPart", tool)
        workflow.append_to("step", step)
        tools[rule] = (tool, step)
    for n, run in enumerate(runs):
        tool, step = tools[run.rule]
        where = "/".join(p for p in (run.use_case, run.center) if p)
        inputs = [
            i for i in (graph.add_file(p, _describe(p)) for p in sorted(run.inputs) if not p.startswith("/")) if i
        ]
        outputs = [o for o in (graph.add_file(p, _describe(p)) for p in sorted(run.outputs)) if o]
        action = crate.add_action(
            tool,
            identifier=f"#run-{n}-{run.rule}",
            object=_one_or_list([crate.get(i) for i in inputs]),
            result=_one_or_list([crate.get(o) for o in outputs]),
            properties={
                "@type": "CreateAction",
                "name": f"{run.rule} {where}".strip(),
                "startTime": _iso(run.start),
                "endTime": _iso(run.end),
                **({"description": f"use case {run.use_case}, center {run.center}"} if where else {}),
            },
        )
        controls.append(
            crate.add(
                ContextEntity(
                    crate,
                    f"#control-{n}-{run.rule}",
                    properties={
                        "@type": "ControlAction",
                        "name": f"orchestrate {action['name']}",
                        "instrument": _ref(step.id),
                        "object": _ref(action.id),
                    },
                )
            )
        )

    # The deposit: every encrypted file with the manifest's checksums, and the reports
    deposit = _deposit_files(graph, results)
    reports = [
        i
        for i in (
            graph.add_file(p, _describe(p))
            for p in ("report/index.html", "report/run_summary.tsv", "qc/index.html", "ega/manifest.tsv")
        )
        if i
    ]
    reports += [
        graph.add_file(p.relative_to(results).as_posix(), {"name": p.name})
        for p in sorted(results.glob("validation/*/*/summary.json"))
    ]
    results_list = [crate.get(i) for i in [*reports, *deposit] if i]
    start = min((r.start for r in runs), default=None)
    end = max((r.end for r in runs), default=None)
    workflow_run = crate.add_action(
        workflow,
        identifier="#workflow-run",
        object=objects,
        result=results_list,
        properties={
            "@type": "CreateAction",
            "name": f"oncofhir run {now}",
            **({"startTime": _iso(start), "endTime": _iso(end)} if start is not None else {}),
        },
    )
    crate.add(
        ContextEntity(
            crate,
            "#orchestration",
            properties={
                "@type": "OrganizeAction",
                "name": "Snakemake run",
                "instrument": _ref(engine.id),
                "object": [_ref(c.id) for c in controls],
                "result": _ref(workflow_run.id),
            },
        )
    )
    for part in [*results_list, config_file]:
        root.append_to("hasPart", part)
    for entity in _generalisation(crate, generalised or []):
        root.append_to("mentions", entity)
    crate.metadata.extra_terms = {"sha256": "http://schema.org/sha256"}  # not a term of the RO-Crate 1.1 context
    out_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # "No source for ...": the results files are described, not copied
        warnings.simplefilter("ignore", UserWarning)
        crate.write(out_dir)
    return {"steps": len(runs), "deposit_files": len(deposit), "entities": len(crate.get_entities())}


def _generalisation(crate: Any, records: list[Path]) -> list[Any]:
    """One entity per (use case, rule): the rule itself and, per center, values in / generalised / unchanged (the
    round trip of the deposit copy). Counts and rule definitions only: never a value, a code found rare, or an id."""
    from rocrate.model.contextentity import ContextEntity

    rules: dict[tuple[str, str], Any] = {}
    for path in sorted(records):
        doc = json.loads(path.read_text(encoding="utf-8"))
        uc, center = doc["use_case"], doc["center"]
        for rule in doc["rules"]:
            key = (uc, rule["variable"])
            if key not in rules:
                definition = rule["definition"]
                rules[key] = crate.add(
                    ContextEntity(
                        crate,
                        f"#generalisation-{uc}-{rule['variable']}",
                        properties={
                            "@type": "CreativeWork",
                            "name": f"generalisation of use case {uc}: {rule['rule']}",
                            "description": "Applied to the encrypted deposit copy only; rule (mapping.yaml "
                            "privacy.generalise): " + json.dumps(definition, sort_keys=True),
                        },
                    )
                )
            for measure in ("values", "generalised", "unchanged"):
                value = crate.add(
                    ContextEntity(
                        crate,
                        f"#generalisation-{uc}-{rule['variable']}-{center}-{measure}",
                        properties={
                            "@type": "PropertyValue",
                            "name": f"{uc}/{center} {rule['variable']}: {measure}",
                            "propertyID": measure,
                            "value": str(rule[measure]),
                        },
                    )
                )
                rules[key].append_to("additionalProperty", value)
    return list(rules.values())


def _one_or_list(entities: list[Any]) -> Any:
    """A single value for one entity (RO-Crate 1.1 prefers it to a singleton array), a list otherwise."""
    return entities[0] if len(entities) == 1 else entities


def _code_version(rule: str) -> str:
    try:
        return stage_code_version(rule)
    except KeyError:
        return __version__


FORMATS = {".json": "application/json", ".tsv": "text/tab-separated-values", ".html": "text/html", ".pub": "text/plain"}


def _describe(relative: str) -> dict[str, str]:
    """Name and media type of a results file."""
    media = FORMATS.get(Path(relative).suffix)
    return {"name": relative, **({"encodingFormat": media} if media else {})}


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0).isoformat()


def _systems(results: Path, use_cases: Iterable[str]) -> dict[str, dict[str, str]]:
    """Code systems of the compiled dictionaries: URI and version per alias."""
    systems: dict[str, dict[str, str]] = {}
    for use_case in use_cases:
        compiled = results / "dictionaries" / f"{use_case}.json"
        if compiled.is_file():
            systems.update(json.loads(compiled.read_text(encoding="utf-8")).get("systems", {}))
    return systems


def _deposit_files(graph: _Graph, results: Path) -> list[str]:
    """Every file of the merged manifest, with its encrypted size and SHA-256 (read, not recomputed)."""
    manifest = results / "ega" / "manifest.tsv"
    if not manifest.is_file():
        return []
    ids = []
    with open(manifest, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            identifier = graph.add_file(
                f"ega/{row['file']}",
                {"name": row["file"], "contentSize": row["c4gh_bytes"], "encodingFormat": "application/crypt4gh"},
                digest=row["c4gh_sha256"],
            )
            if identifier:
                ids.append(identifier)
    return ids


def crate_problems(crate_path: str | Path, manifest_rows: Iterable[dict[str, str]]) -> list[str]:
    """Deposit files whose crate entry is missing or whose SHA-256 differs from the manifest's."""
    graph = json.loads(Path(crate_path).read_text(encoding="utf-8"))["@graph"]
    by_id = {e["@id"]: e for e in graph}
    problems = []
    for row in manifest_rows:
        entity = by_id.get(f"../ega/{row['file']}")
        if entity is None:
            problems.append(f"{row['file']}: not in the RO-Crate {crate_path}")
        elif entity.get("sha256") != row["c4gh_sha256"]:
            problems.append(
                f"{row['file']}: sha256 {entity.get('sha256')} in {crate_path} differs from the manifest's "
                f"{row['c4gh_sha256']}"
            )
    return problems
