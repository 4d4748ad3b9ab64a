"""Benchmark loading the cohort into a FHIR server: resources/s of a first load and of a reload, server memory.

Usage: python benchmarks/bench_fhir_server.py --server http://127.0.0.1:8090/fhir
       [--pid-file tools/fhir-server/target/server-8090.pid] [--batch 20] [--in-flight 2] NDJSON...

Loads every center's NDJSON (``results/fhir/*/*.ndjson`` of a run with the plaintext kept) with the loader the
workflow uses, one center after the other, then loads them all again (the reload must create nothing and change
no version). Prints bundles, resources, seconds and resources/s of each pass, what the server created, updated,
left unchanged or refused, and, with ``--pid-file`` (the local HAPI server's, tools/fhir-server/start.sh), the
server's CPU seconds per pass (resources per server CPU-second hardly depends on other jobs sharing the machine)
and its resident memory now and at its peak (VmRSS, VmHWM from /proc). Start from a fresh server: the first pass
counts as a first load only on an empty one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

from oncofhir.server.client import FhirClient
from oncofhir.server.load import load_center


def _memory(pid_file: str | None) -> str:
    if not pid_file:
        return "server memory: not measured (no --pid-file)"
    pid = Path(pid_file).read_text().strip()
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return f"server memory: {fields['VmRSS'].strip()} resident now, {fields['VmHWM'].strip()} at peak (pid {pid})"


def _cpu(pid_file: str | None) -> float | None:
    """The server's CPU seconds so far (user + system, /proc/<pid>/stat), or None without --pid-file."""
    if not pid_file:
        return None
    pid = Path(pid_file).read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pass(name: str, files: list[str], client: FhirClient, batch: int, in_flight: int, pid_file: str | None) -> None:
    cpu_before = _cpu(pid_file)
    start = time.monotonic()
    outcome: Counter[str] = Counter()
    bundles = resources = failed = 0
    for path in files:
        p = Path(path)
        report = load_center(p, p.parent.name, p.name.removesuffix(".ndjson"), client, batch=batch, in_flight=in_flight)
        outcome.update(report["outcome"])
        bundles += report["bundles_accepted"]
        resources += report["resources_accepted"]
        failed += len(report["failures"]) + (report["error"] is not None)
        if report["status"] != "loaded":
            print(report["line"], file=sys.stderr)
    seconds = time.monotonic() - start
    print(
        f"{name}: {len(files)} centers, {bundles} bundles, {resources} resources in {seconds:.1f} s = "
        f"{resources / seconds:.0f} resources/s ({dict(outcome)}; {failed} failures)"
    )
    cpu_after = _cpu(pid_file)
    if cpu_before is not None and cpu_after is not None:
        used = cpu_after - cpu_before
        print(f"  server CPU: {used:.1f} s = {resources / used:.0f} resources per server CPU-second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ndjson", nargs="+")
    parser.add_argument("--server", required=True)
    parser.add_argument("--pid-file")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--in-flight", type=int, default=2)
    args = parser.parse_args()
    client = FhirClient(args.server)
    print(f"batch {args.batch}, in flight {args.in_flight}")
    _pass("first load", args.ndjson, client, args.batch, args.in_flight, args.pid_file)
    print(_memory(args.pid_file))
    _pass("reload", args.ndjson, client, args.batch, args.in_flight, args.pid_file)
    print(_memory(args.pid_file))


if __name__ == "__main__":
    main()
