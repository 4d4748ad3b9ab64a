"""Benchmark the whole workflow on a synthetic consortium: 5 use cases x 7 centers, N patients in all.

Usage: python benchmarks/bench_workflow.py [--patients 20000] [--centers 7] [--cores 2] [--repeats 3] [--keep]
Generates the centers' exports once (cached under benchmarks/out/exports/), runs `snakemake --cores 2` on them
into a fresh results folder, and prints wall time, time per stage (sum of Snakemake's benchmark files), peak
memory, output size, and the original scripts' FHIR-only time for the same patient mix (REVIEW.md). The figures
are also written to benchmarks/out/workflow-<patients>x<centers>.json.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import functools
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Original EuCanImage scripts, FHIR step only, one core, patients/s (REVIEW.md, "Baseline speed").
ORIGINAL = {"uc1": 374, "uc3": 190, "uc45": 183, "uc68": 89, "uc7": 75}
SEED = 1
BENCHMARK_SECRET = "benchmark-secret-not-the-demo-one"  # synthetic data only


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal integers (the first ones one larger)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def patients_per_export(patients: int, centers: int) -> dict[tuple[str, str], int]:
    """{(use case, center): records}: the total split evenly over use cases, then over each use case's centers."""
    plan = {}
    for use_case, n in zip(ORIGINAL, split(patients, len(ORIGINAL)), strict=True):
        for k, records in enumerate(split(n, centers)):
            plan[(use_case, f"center_{k + 1}")] = records
    return plan


@functools.cache
def _dictionary(use_case: str):
    from oncofhir.dictionary import compile_dictionary

    return compile_dictionary(REPO / "resources" / "dictionaries" / use_case, REPO / "resources" / "ontologies")


def _write_export(args: tuple[str, str, int, str]) -> str:
    use_case, center, records, out = args
    from oncofhir.demo import generate

    tmp = Path(out).with_suffix(".tmp")
    tmp.write_bytes(generate(_dictionary(use_case), center, records, SEED).encode("utf-8"))
    tmp.replace(out)
    return out


def make_exports(folder: Path, plan: dict[tuple[str, str], int], workers: int) -> float:
    """Write the exports that are not cached yet (generation is slow: ~2 ms per record); seconds spent."""
    todo = []
    for (use_case, center), records in plan.items():
        path = folder / use_case / f"{center}.csv"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            todo.append((use_case, center, records, str(path)))
    t0 = time.perf_counter()
    if todo:
        print(f"generating {len(todo)} exports ({sum(r for *_, r, _ in todo):,} patients) ...", flush=True)
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_export, sorted(todo, key=lambda t: -t[2])))
    return time.perf_counter() - t0


def _follow_main_cpu(proc: subprocess.Popen[bytes]) -> float:
    """Wait for ``proc``; the CPU seconds of the Snakemake process itself (not its jobs), sampled every 0.1 s.

    Snakemake's own work per job (scheduling, metadata, output checks) is part of a run's cost that the jobs'
    benchmark files cannot show.
    """
    import psutil

    last = 0.0
    try:
        handle = psutil.Process(proc.pid)
        while proc.poll() is None:
            times = handle.cpu_times()
            last = times.user + times.system
            time.sleep(0.1)
    except psutil.Error:
        pass
    proc.wait()
    return last


def read_benchmarks(results: Path) -> dict[str, list[dict[str, float]]]:
    """{rule: [benchmark row per job]} from <results>/benchmarks/<rule>/... or <results>/benchmarks/<rule>.tsv."""
    rows = defaultdict(list)
    root = results / "benchmarks"
    for path in root.rglob("*.tsv"):
        rule = path.relative_to(root).parts[0].removesuffix(".tsv")
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                rows[rule].append({k: float(v) for k, v in row.items() if k in ("s", "max_rss", "cpu_time")})
    return rows


#: What the analysis tables' jobs print in their logs (oncofhir.views.stage.CenterTables.cpu_seconds).
TABLES_LINE = re.compile(r"^tables: ([0-9.]+) CPU-s", re.MULTILINE)
#: Rules that exist only for the analysis tables (docs/tables.md): their jobs count whole.
TABLE_RULES = ("views", "cohort_db")


def tables_cost(results: Path, stages: dict[str, dict], snakemake_per_job: float) -> float:
    """CPU seconds the analysis tables add to the run: their part of the fhir and encrypt jobs (the jobs' own
    measure, in their logs), the jobs of the rules that exist only for them (wall seconds: small serial jobs, and
    Snakemake's benchmark files often record no CPU for short jobs) and Snakemake's own work for those jobs."""
    in_jobs = sum(
        float(m)
        for stage in ("fhir", "encrypt")
        for log in (results / "logs" / stage).rglob("*.log")
        for m in TABLES_LINE.findall(log.read_text(encoding="utf-8", errors="replace"))
    )
    own = [stages[r] for r in TABLE_RULES if r in stages]
    return in_jobs + sum(s["seconds"] for s in own) + snakemake_per_job * sum(s["jobs"] for s in own)


def disk_usage(folder: Path, skip: tuple[str, ...] = ("logs", "benchmarks")) -> tuple[int, int, int]:
    """(bytes on disk, apparent bytes, files) below ``folder``, without the logs and benchmarks."""
    blocks = size = files = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        if Path(dirpath) == folder:
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            blocks += st.st_blocks * 512
            size += st.st_size
            files += 1
    return blocks, size, files


def calibrate() -> float:
    """Seconds for a fixed pure-Python loop: this machine's speed right now, printed beside every run.

    The project machine is a shared VM whose speed drifts by up to 1.7x within an hour (same loop: 0.5-0.85 s);
    comparing runs without it compares the neighbours' load, not the code.
    """
    t0 = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - t0, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20000, help="patients in the whole consortium")
    parser.add_argument("--centers", type=int, default=7, help="centers per use case")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs (each into a fresh folder); the median is kept")
    parser.add_argument(
        "--workdir", default=str(REPO / "benchmarks" / "out"), help="scratch folder (on the disk under test)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the results folder")
    args = parser.parse_args(argv)

    work = Path(args.workdir)
    plan = patients_per_export(args.patients, args.centers)
    exports = work / "exports" / f"{args.patients}x{args.centers}-seed{SEED}"
    generation_s = make_exports(exports, plan, args.cores)
    # Bytecode for the package, as a regular install or a first import writes it. With PYTHONDONTWRITEBYTECODE set
    # (some containers and CI images, this project's machine among them) an editable install never gets any, and each
    # of the run's ~185 job processes would compile the package from source again (0.1-0.25 s a job).
    compileall.compile_dir(REPO / "src" / "oncofhir", quiet=1)
    compileall.compile_dir(REPO / "workflow" / "scripts", quiet=1)
    reports = []
    for repeat in range(args.repeats):
        loop_s = calibrate()
        report = run_once(args, work, plan, exports, generation_s)
        if report is None:
            return 1
        report["calibration_loop_s"] = loop_s
        print(
            f"run {repeat + 1}/{args.repeats}: wall {report['wall_s']} s, CPU {report['cpu_s']} s "
            f"(system {report['cpu_system_s']} s), Snakemake itself {report['snakemake_main_cpu_s']} s, "
            f"tables {report['tables_cpu_s']} s (+{report['tables_added_percent']} %), "
            f"calibration loop {loop_s} s",
            flush=True,
        )
        reports.append(report)
    reports.sort(key=lambda r: r["wall_s"])
    median = reports[len(reports) // 2]
    median["repeats"] = [
        {
            k: r[k]
            for k in (
                "wall_s",
                "cpu_s",
                "cpu_system_s",
                "snakemake_main_cpu_s",
                "tables_cpu_s",
                "tables_added_percent",
                "calibration_loop_s",
            )
        }
        for r in reports
    ]
    (work / f"workflow-{args.patients}x{args.centers}.json").write_text(json.dumps(median, indent=1) + "\n")
    print_report(median, args, plan)
    # Deleted only now: ext4 creates files slowly for a while after many were deleted (bench_encrypt.settle), and a
    # repeat must not pay for its predecessor's clean-up.
    for report in reports:
        if args.keep:
            print(f"results kept in {report['run_folder']}")
        else:
            shutil.rmtree(report["run_folder"], ignore_errors=True)
    return 0


def run_once(
    args: argparse.Namespace, work: Path, plan: dict[tuple[str, str], int], exports: Path, generation_s: float
) -> dict | None:
    """One run of the whole workflow into a fresh folder; its figures, or None when Snakemake failed."""
    run = Path(tempfile.mkdtemp(prefix=f"workflow-{args.patients}-", dir=work))
    sheet = run / "centers.tsv"
    sheet.write_text(
        "use_case\tcenter\texport\tdescription\n"
        + "".join(f"{u}\t{c}\t{exports / u / c}.csv\tsynthetic, {n} patients\n" for (u, c), n in plan.items()),
        encoding="utf-8",
    )
    # The exports are not the workflow's demo exports, so (as for real data) the demo keys and secret are refused:
    # two recipient key pairs made here, as many as the demo's (EGA stand-in, consortium), and a benchmark secret.
    from oncofhir.deposit.keys import generate_keypair

    recipients = []
    for name in ("ega", "consortium"):
        generate_keypair(run / f"{name}.sec", run / f"{name}.pub")
        recipients.append(str(run / f"{name}.pub"))
    config = run / "config.yaml"
    config.write_text(
        f"centers: {sheet}\nresults: {run / 'results'}\ndemo:\n  folder: {run / 'demo'}\n"
        f"deposit: {{demo_keys: false, recipients: [{', '.join(recipients)}]}}\n"
        # the IG (ig.enabled auto) costs the same whatever the data size (SUSHI, once per dictionary change): off, so
        # the figures scale with the data and stay comparable with docs/cluster.md; its cost is in docs/ig.md
        "ig: {enabled: false}\n"
    )

    cmd = [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--configfile", str(config)]
    print(f"running: {' '.join(cmd)}", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    env = {**os.environ, "ONCOFHIR_PSEUDONYM_KEY": BENCHMARK_SECRET}
    with (run / "snakemake.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        main_cpu = _follow_main_cpu(proc)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    cpu = user + system  # every process of the run
    peak_process_mb = after.ru_maxrss / 1024
    if proc.returncode:
        print((run / "snakemake.log").read_text()[-3000:], file=sys.stderr)
        print(f"snakemake failed (exit {proc.returncode}); results kept in {run}", file=sys.stderr)
        return None

    bench = read_benchmarks(run / "results")
    on_disk, apparent, files = disk_usage(run / "results")
    by_uc = defaultdict(int)
    for (use_case, _), n in plan.items():
        by_uc[use_case] += n
    original_fhir = sum(n / ORIGINAL[uc] for uc, n in by_uc.items())
    jobs = sum(len(v) for v in bench.values())
    stages = {
        rule: {
            "jobs": len(rows),
            "seconds": round(sum(r["s"] for r in rows), 2),
            "cpu_seconds": round(sum(r.get("cpu_time", 0) for r in rows), 2),
            "slowest_job_s": round(max(r["s"] for r in rows), 2),
            "max_rss_mb": round(max(r["max_rss"] for r in rows), 1),
        }
        for rule, rows in sorted(bench.items(), key=lambda kv: -sum(r["s"] for r in kv[1]))
    }
    tables_cpu = tables_cost(run / "results", stages, main_cpu / max(jobs, 1))
    report = {
        "patients": args.patients,
        "exports": len(plan),
        "largest_export_patients": max(plan.values()),
        "cores": args.cores,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cpu_user_s": round(user, 1),
        "cpu_system_s": round(system, 1),
        "snakemake_main_cpu_s": round(main_cpu, 1),
        "tables_cpu_s": round(tables_cpu, 1),
        # what the tables add to the rest of the run (the target: < 20 %)
        "tables_added_percent": round(100 * tables_cpu / max(cpu - tables_cpu, 1e-9), 1),
        "jobs": jobs,
        "job_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        "stages": stages,
        "peak_job_rss_mb": max(s["max_rss_mb"] for s in stages.values()),
        "peak_process_rss_mb": round(peak_process_mb, 1),
        "output_bytes_on_disk": on_disk,
        "output_bytes": apparent,
        "output_files": files,
        "original_fhir_s": round(original_fhir, 1),
        "export_generation_s": round(generation_s, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_1min_at_end": os.getloadavg()[0],
    }
    report["run_folder"] = str(run)
    return report


def print_report(report: dict, args: argparse.Namespace, plan: dict[tuple[str, str], int]) -> None:
    """The median run's figures as a table."""
    stages, jobs, wall, cpu = report["stages"], report["jobs"], report["wall_s"], report["cpu_s"]
    main_cpu, original_fhir = report["snakemake_main_cpu_s"], report["original_fhir_s"]
    on_disk, apparent, files = report["output_bytes_on_disk"], report["output_bytes"], report["output_files"]
    peak_process_mb, generation_s = report["peak_process_rss_mb"], report["export_generation_s"]

    shape = f"{len(plan)} exports (5 use cases x {args.centers} centers, up to {max(plan.values())} patients each)"
    print(f"\n{args.patients:,} patients, {shape}, --cores {args.cores}")
    print(f"{'stage':20} {'jobs':>5} {'sum s':>8} {'cpu s':>8} {'slowest s':>10} {'max RSS MB':>11}")
    for rule, s in stages.items():
        print(
            f"{rule:20} {s['jobs']:>5} {s['seconds']:>8.1f} {s['cpu_seconds']:>8.1f} {s['slowest_job_s']:>10.2f}"
            f" {s['max_rss_mb']:>11.0f}"
        )
    print(f"{'all jobs':20} {jobs:>5} {report['job_seconds']:>8.1f}")
    print(
        f"wall time            {wall:8.1f} s  (Snakemake, {args.cores} cores; median of {len(report['repeats'])} "
        f"run(s); calibration loop {report['calibration_loop_s']} s)"
    )
    print(
        f"CPU time             {cpu:8.1f} s  (every process of the run: Snakemake and its jobs; user "
        f"{report['cpu_user_s']} s, system {report['cpu_system_s']} s)"
    )
    print(f"Snakemake itself     {main_cpu:8.1f} s  CPU (scheduling, metadata, checks: {main_cpu / jobs:.2f} s a job)")
    print(
        f"analysis tables      {report['tables_cpu_s']:8.1f} s  CPU (views, Parquet, round trip, their deposit): "
        f"+{report['tables_added_percent']} % on the rest of the run"
    )
    peak = report["peak_job_rss_mb"]
    print(f"peak memory          {peak:8.0f} MB largest job, {peak_process_mb:.0f} MB any process")
    print(f"output               {on_disk / 2**20:8.1f} MiB on disk, {apparent / 2**20:.1f} MiB in {files:,} files")
    rates = ", ".join(f"{k} {v}/s" for k, v in ORIGINAL.items())
    print(f"original scripts     {original_fhir:8.1f} s  FHIR step alone, one core ({rates})")
    print(f"export generation    {generation_s:8.1f} s  (not part of the workflow; cached)")


if __name__ == "__main__":
    sys.exit(main())
