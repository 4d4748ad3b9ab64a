#!/usr/bin/env bash
# .ci/slurm.sh - run the demo workflow through a real single-node SLURM cluster (profiles/slurm) and check that
# every output is byte-identical to a local `--cores 2` run of the same workflow.
#
# 1. brings up SLURM from Debian's packages (.ci/slurm_up.sh: munge, slurmctld, slurmd, and slurmdbd + MariaDB
#    unless SLURM_ACCOUNTING=none);
# 2. runs `snakemake --profile profiles/slurm` on the demo config, under `timeout` (TERM, then KILL);
# 3. runs the same workflow locally with `--cores 2`, in the same paths (outputs embed the export path);
# 4. compares every file under results/ and demo/ byte for byte, except logs/, benchmarks/ and ro-crate/ (DuckDB
#    files by their rows); Crypt4GH files (random by design) are decrypted with each run's key and compared
#    through their manifests' plaintext sums;
# 5. always (trap) cancels the jobs it submitted and stops exactly the daemons it started, by pid
#    (.ci/slurm_down.sh).
# Exit status: 0 when both runs succeed and agree, non-zero otherwise.
#
# Knobs: SLURM_ACCOUNTING (slurmdbd | none; default slurmdbd), ONCOFHIR_SLURM_WORK (scratch folder, default
# /tmp/oncofhir-slurm-ci, wiped first), ONCOFHIR_SLURM_TIMEOUT (seconds per workflow run, default 900),
# SLURM_ACCOUNT / SLURM_PARTITION (default ci / debug), SLURM_SKIP_APT=1.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
# the public demo secret, as in the README's demo command (the demo config accepts it: deposit.demo_keys)
export ONCOFHIR_PSEUDONYM_KEY="${ONCOFHIR_PSEUDONYM_KEY:-oncofhir-demo-secret-NOT-for-real-data}"
export SLURM_ACCOUNTING="${SLURM_ACCOUNTING:-slurmdbd}"
export SLURM_ACCOUNT="${SLURM_ACCOUNT:-ci}" SLURM_PARTITION="${SLURM_PARTITION:-debug}"
export SLURM_STARTED="${SLURM_STARTED:-/run/oncofhir-slurm.started}"
WORK="${ONCOFHIR_SLURM_WORK:-/tmp/oncofhir-slurm-ci}"
LIMIT="${ONCOFHIR_SLURM_TIMEOUT:-900}"
PREFIX="oncofhirci"  # SLURM job-name prefix of this script's jobs: the clean-up cancels exactly these
T0=$(date +%s)
log() { printf '[slurm.sh %4ds] %s\n' $(( $(date +%s) - T0 )) "$*"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if command -v squeue >/dev/null && [ -s "$SLURM_STARTED" ]; then
    local ids=() list
    mapfile -t ids < <(squeue -h -o '%A %j' 2>/dev/null | awk -v p="$PREFIX" 'index($2, p) == 1 {print $1}')
    if [ "${#ids[@]}" -gt 0 ]; then
      log "cancelling left-over jobs: ${ids[*]}"
      scancel "${ids[@]}" || true
      list=$(IFS=,; echo "${ids[*]}")
      for _ in $(seq 1 60); do squeue -h -t R,CG -j "$list" 2>/dev/null | grep -q . || break; sleep 0.5; done
    fi
  fi
  log "stopping the daemons this script started"
  "$REPO/.ci/slurm_down.sh" || rc=1
  log "done (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# find_spec, not import: importing the plugin runs `scontrol show config`, which waits 9 s while no cluster is up
has_plugin() { python3 -c 'import importlib.util as u, sys; sys.exit(u.find_spec("snakemake_executor_plugin_slurm") is None)'; }
has_plugin || python3 -m pip install -q -e ".[slurm]"
has_plugin || { echo "snakemake-executor-plugin-slurm is missing (pip install -e '.[slurm]')" >&2; exit 1; }

log "bringing up SLURM (accounting: $SLURM_ACCOUNTING)"
"$REPO/.ci/slurm_up.sh"
T_UP=$(date +%s)

# The HTML pages print their run date: one fixed date (reproducible-builds convention) for both runs, so the
# comparison below also holds across midnight.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(date +%s)}"

# ---------------------------------------------------------------- demo config in a scratch folder
# Both runs write to the same paths ($WORK/run), one after the other; each run's outputs are then moved aside.
rm -rf "$WORK"
mkdir -p "$WORK/run"
python3 - "$REPO" "$WORK/run" <<'PY'
"""Copy the shipped config and centers sheet, with results and demo exports under the scratch folder."""
import sys
from pathlib import Path

import yaml

repo, run = Path(sys.argv[1]), Path(sys.argv[2])
base = repo / "config"  # paths in a config file are relative to its folder (config/README.md)
cfg = yaml.safe_load((base / "config.yaml").read_text(encoding="utf-8"))
demo = (base / cfg["demo"]["folder"]).resolve()
sheet = (base / cfg["centers"]).resolve()
lines, header = [], None
for line in sheet.read_text(encoding="utf-8").splitlines():
    if line.startswith("#") or not line.strip():
        lines.append(line)
        continue
    cells = line.split("\t")
    if header is None:
        header = cells
    else:
        i = header.index("export")
        path = (sheet.parent / cells[i]).resolve()
        if path.is_relative_to(demo):
            cells[i] = str(run / "demo" / path.relative_to(demo))
    lines.append("\t".join(cells))
(run / "centers.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
cfg.update(centers=str(run / "centers.tsv"), results=str(run / "results"))
for key in ("dictionaries", "ontologies"):
    cfg[key] = str((base / cfg[key]).resolve())
cfg["demo"]["folder"] = str(run / "demo")
(run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
PY

STATUS_ARGS=()
if [ "$SLURM_ACCOUNTING" = none ]; then
  # no accounting: sacct never sees a job end, and no account can be validated
  STATUS_ARGS=(--slurm-status-command squeue)
  SLURM_ACCOUNT=""
fi
# First status check 10 s after a submission (profile: 20 s): a demo job takes 5-10 s here, most of it the two
# Snakemake start-ups every SLURM job makes (the job step, then the job itself).
SLURM_ARGS=(--profile profiles/slurm --configfile "$WORK/run/config.yaml" --slurm-jobname-prefix "$PREFIX"
  --slurm-init-seconds-before-status-checks 10 --slurm-logdir "$WORK/slurm_logs" "${STATUS_ARGS[@]}")

# ---------------------------------------------------------------- 1. through SLURM
log "workflow through SLURM: snakemake ${SLURM_ARGS[*]}"
# At the limit: SIGTERM (Snakemake cancels its SLURM jobs and releases its locks), SIGKILL 60 s later if it hangs.
timeout -k 60 "$LIMIT" python3 -m snakemake "${SLURM_ARGS[@]}" > "$WORK/slurm.log" 2>&1 || {
  rc=$?; tail -40 "$WORK/slurm.log" >&2; echo "SLURM run failed (exit $rc; 124 or 137: time limit)" >&2; exit 1; }
T_SLURM=$(date +%s)
NJOBS=$(grep -c "has been submitted with SLURM jobid" "$WORK/slurm.log" || true)
log "SLURM run done: $NJOBS jobs in $((T_SLURM - T_UP)) s"
timeout -s KILL 300 python3 -m snakemake "${SLURM_ARGS[@]}" -n > "$WORK/slurm-again.log" 2>&1
grep -q "Nothing to be done" "$WORK/slurm-again.log" || {
  cat "$WORK/slurm-again.log" >&2; echo "a second run through SLURM would rerun jobs" >&2; exit 1; }
mkdir -p "$WORK/slurm" && mv "$WORK/run/results" "$WORK/run/demo" "$WORK/slurm/"

# ---------------------------------------------------------------- 2. locally, same paths
log "workflow locally: snakemake --cores 2"
timeout -k 60 "$LIMIT" python3 -m snakemake --cores 2 --configfile "$WORK/run/config.yaml" \
  > "$WORK/local.log" 2>&1 || { tail -40 "$WORK/local.log" >&2; echo "local run failed" >&2; exit 1; }
T_LOCAL=$(date +%s)
log "local run done in $((T_LOCAL - T_SLURM)) s"
mkdir -p "$WORK/local" && mv "$WORK/run/results" "$WORK/run/demo" "$WORK/local/"

# ---------------------------------------------------------------- 3. compare
for run in slurm local; do  # each run's encrypted files decrypt, with its own demo key, to what its manifest lists
  oncofhir verify "$WORK/$run/results/ega/manifest.tsv" --sk "$WORK/$run/results/keys/ega.sec" >/dev/null
done
python3 - "$WORK/slurm" "$WORK/local" <<'PY'
"""Every output file of the two runs, byte for byte (logs, benchmarks and Snakemake's timestamps excepted).

Crypt4GH output is random by design (fresh session keys and nonces, and the demo keys are made per run): the
encrypted files and keys are compared by name only, and the manifests on every column but the encrypted files'
sizes and checksums. Each run's files were decrypted with its own key and matched its manifest (oncofhir verify).
"""
import sys
from pathlib import Path

SKIP_DIRS = {"logs", "benchmarks", "ro-crate"}  # ro-crate: the run's provenance (run times, job records)
ENCRYPTED_COLUMNS = ("c4gh_bytes", "c4gh_md5", "c4gh_sha256")


def files(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and not SKIP_DIRS & set(rel.parts[1:2]) and path.name != ".snakemake_timestamp":
            found[rel.as_posix()] = path
    return found


def plaintext_columns(path: Path) -> list[list[str]]:
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    keep = [k for k, name in enumerate(lines[0]) if name not in ENCRYPTED_COLUMNS]
    return [[cells[k] for k in keep] for cells in lines]


def same(rel: str, a: Path, b: Path) -> bool:
    if rel.endswith(".c4gh") or rel.startswith("results/keys/"):
        return True  # random by design: compared by name (and decrypted above)
    if rel.startswith("results/ega/") and rel.endswith("manifest.tsv"):
        return plaintext_columns(a) == plaintext_columns(b)
    if rel.endswith(".duckdb"):  # a DuckDB file's bytes differ per write (block layout): compared by its rows
        return database_rows(a) == database_rows(b)
    return a.read_bytes() == b.read_bytes()


def database_rows(path: Path) -> list:
    """Every table and view of a DuckDB database (the cohort, docs/tables.md) with its rows, sorted."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [n for (n,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        return [(n, con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall()) for n in names]
    finally:
        con.close()


slurm, local = (files(Path(p)) for p in sys.argv[1:3])
problems = [f"only in the SLURM run: {p}" for p in sorted(slurm.keys() - local.keys())]
problems += [f"only in the local run: {p}" for p in sorted(local.keys() - slurm.keys())]
problems += [f"differs: {p}" for p in sorted(slurm.keys() & local.keys()) if not same(p, slurm[p], local[p])]
if not slurm:
    problems.append("the SLURM run wrote nothing")
for line in problems[:50]:
    print(line, file=sys.stderr)
if problems:
    sys.exit(f"{len(problems)} difference(s) between the SLURM and the local run")
encrypted = sum(1 for p in slurm if p.endswith(".c4gh"))
print(f"identical: {len(slurm)} files ({sum(p.stat().st_size for p in slurm.values())} bytes) in both runs, "
      f"{encrypted} of them encrypted (same names, same plaintext)")
PY
log "SLURM up $((T_UP - T0)) s, SLURM run $((T_SLURM - T_UP)) s, local run $((T_LOCAL - T_SLURM)) s"
