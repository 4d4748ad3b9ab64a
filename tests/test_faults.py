"""Faults (issue #11): killed jobs leave no plaintext, plaintext folders are owner-only, one secret per deposit, and
a full disk or exhausted memory is one line with exit code 5 and no partial file."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES, REPO, workflow_env

from oncofhir.demo import generate
from oncofhir.deposit.pseudonym import secret_fingerprint
from oncofhir.io_utils import clean_stale, sweep_stale, temp_path
from oncofhir.pipeline import stage_compile, stage_ingest

SECRET = "fault-test-secret-number-one-0001"
OTHER_SECRET = "fault-test-secret-number-two-0002"
CENTERS = ("hospital_a", "hospital_b")


def oncofhir(*args: str) -> list[str]:
    return [sys.executable, "-m", "oncofhir", *args]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------------------- temp files of killed jobs


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_stale_oncofhir_temp_files_are_removed(tmp_path: Path) -> None:
    """A temp file is removed when its process is gone or its pid was reused, or (made on another host) when it
    has not been touched for an hour; a live writer's file, another output's file and a user's file stay."""
    folder = tmp_path / "results" / "fhir" / "uc1"
    folder.mkdir(parents=True)
    output = folder / "a.ndjson"
    ours = temp_path(output).name  # .a.ndjson.oncofhir-tmp-<host>-<this pid>
    host_prefix = ours[: ours.rindex("-") + 1]
    live = subprocess.Popen(["sleep", "60"])
    reused = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.05)
        dead = _dead_pid()
        names = {
            "dead": f"{host_prefix}{dead}",
            "live": f"{host_prefix}{live.pid}",
            "reused": f"{host_prefix}{reused.pid}",  # written an hour before its "process" started
            "foreign_new": ".a.ndjson.oncofhir-tmp-otherhost-123",
            "foreign_old": ".a.ndjson.oncofhir-tmp-otherhost-124",
            "legacy_old": f".a.ndjson.tmp{dead}",
            "other_output": f".b.ndjson.oncofhir-tmp-{host_prefix.split('-tmp-')[1]}{dead}",
            "user": ".a.ndjson.notes",
        }
        for name in names.values():
            (folder / name).write_bytes(b"plaintext")
        hour_ago = time.time() - 3700
        for key in ("reused", "foreign_old", "legacy_old"):
            os.utime(folder / names[key], (hour_ago, hour_ago))
        removed = clean_stale(output)
        assert sorted(p.name for p in removed) == sorted(
            names[k] for k in ("dead", "reused", "foreign_old", "legacy_old")
        )
        left = sorted(p.name for p in folder.iterdir())
        assert left == sorted(names[k] for k in ("live", "foreign_new", "other_output", "user"))
        # the workflow's sweep before any job: every stale one under results/, whatever output it belongs to
        assert [p.name for p in sweep_stale(tmp_path / "results")] == [names["other_output"]]
        assert sorted(p.name for p in folder.iterdir()) == sorted(names[k] for k in ("live", "foreign_new", "user"))
    finally:
        live.kill()
        reused.kill()
        live.wait()
        reused.wait()
    assert [p.name for p in sweep_stale(tmp_path / "results")] == [names["live"]]  # its writer is gone now


def _ingested(tmp: Path, compiled, records: int) -> tuple[Path, Path]:
    """A compiled uc1 dictionary and the ingest outputs of a synthetic center under ``tmp``."""
    dictionary = tmp / "uc1.json"
    stage_compile(DICTIONARIES / "uc1", ONTOLOGIES, dictionary)
    export = tmp / "export.csv"
    export.write_text(generate(compiled["uc1"], "hospital_a", records, seed=5), encoding="utf-8")
    ing = tmp / "ingest"
    stage_ingest(dictionary, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
    return dictionary, ing


def test_a_killed_fhir_job_leaves_a_temp_file_that_its_rerun_removes(tmp_path: Path, compiled) -> None:
    """SIGKILL the FHIR stage while it streams the center's NDJSON and index: their temp files stay (nothing can
    remove them then; the stage's rejects wait in an anonymous, already unlinked file); the rerun removes them and
    writes complete outputs."""
    dictionary, ing = _ingested(tmp_path, compiled, 3000)
    fhir = tmp_path / "fhir"
    command = oncofhir(
        *("fhir", "--dictionary", str(dictionary), "--records", str(ing / "records.csv")),
        *("--ingest-rejects", str(ing / "rejects.tsv"), "--ingest-report", str(ing / "report.json")),
        *("--ndjson", str(fhir / "a.ndjson"), "--index", str(fhir / "a.index.tsv")),
        *("--rejects", str(fhir / "a.rejects.tsv"), "--summary", str(fhir / "a.summary.json")),
    )
    env = workflow_env(SECRET)
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    temp = temp_path(fhir / "a.ndjson").name.rsplit("-", 1)[0] + f"-{job.pid}"
    while job.poll() is None and time.monotonic() < deadline:  # until bundles are on disk in the temp file
        if (fhir / temp).exists() and (fhir / temp).stat().st_size > 0:
            break
        time.sleep(0.002)
    job.send_signal(signal.SIGKILL)
    job.wait()
    index_temp = temp_path(fhir / "a.index.tsv").name.rsplit("-", 1)[0] + f"-{job.pid}"
    assert sorted(p.name for p in fhir.iterdir()) == [index_temp, temp]  # killed mid-write: only its temp files
    assert (fhir / temp).stat().st_size > 0
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in fhir.iterdir()) == [
        "a.index.tsv",
        "a.ndjson",
        "a.rejects.tsv",
        "a.summary.json",
    ]
    summary = json.loads((fhir / "a.summary.json").read_text())
    assert len((fhir / "a.ndjson").read_bytes().splitlines()) == summary["bundles"]


def _crash_test_module():
    spec = importlib.util.spec_from_file_location("crash_test", REPO / "tools" / "crash_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["crash_test"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_workflow_killed_while_writing_fhir_reruns_to_the_uninterrupted_outputs(tmp_path: Path) -> None:
    """tools/crash_test.py, small: the whole run SIGKILLed while the FHIR job writes its NDJSON, then the plain rerun
    (snakemake --unlock; snakemake): outputs equal an uninterrupted run's, no temp file left under results/."""
    lines: list[str] = []
    found = _crash_test_module().crash_test(tmp_path, 1500, "uc1", ("fhir",), out=lines.append)
    kill = found["kills"][0]
    assert not kill.completed, lines
    assert len(kill.temp_files) == 2, lines  # the NDJSON and the index, streamed side by side
    for temp, name in zip(kill.temp_files, ("index\\.tsv", "ndjson"), strict=True):
        assert re.fullmatch(rf"fhir/uc1/\.site_a\.{name}\.oncofhir-tmp-[A-Za-z0-9_]*-[0-9]+", temp), lines
    assert found["left"] == {"fhir": []}, lines
    assert found["differences"] == {"fhir": []}, lines
    assert found["compared"] > 1500


# ------------------------------------------------------------------------------------------ a real workflow run


@dataclass
class Run:
    root: Path
    config: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    def snakemake(self, secret: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(self.config), *args],
            cwd=REPO,
            env=workflow_env(secret),
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Two uc1 demo centers through the whole Snakefile with a (non-demo) secret, plaintext kept (one file per
    patient too: deposit.temp_plaintext false)."""
    root = tmp_path_factory.mktemp("faults")
    sheet = root / "centers.tsv"
    sheet.write_text(
        "use_case\tcenter\texport\n" + "".join(f"uc1\t{c}\t{root}/demo/uc1/{c}.csv\n" for c in CENTERS),
        encoding="utf-8",
    )
    config = root / "config.yaml"
    config.write_text(
        f"centers: {sheet}\nresults: {root}/results\ndemo: {{folder: {root}/demo, records: 20, seed: 3}}\n"
        "deposit: {temp_plaintext: false}\n"
        "ig: {enabled: false}\n",  # no IG needed here (test_ig, test_rerun and test_workflow build it)
        encoding="utf-8",
    )
    run = Run(root, config)
    done = run.snakemake(SECRET)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def test_every_plaintext_folder_is_owner_only_after_a_workflow_run(workflow_run: Run) -> None:
    """Every folder holding a 0600 file, and each folder from it up to results/, is 0700 (Snakemake creates them
    0755); the named plaintext folders are among them; the demo exports are 0600 in a 0700 folder."""
    results = workflow_run.results
    private_files = [p for p in results.rglob("*") if p.is_file() and mode(p) == 0o600]
    folders = {parent for p in private_files for parent in p.parents if parent == results or results in parent.parents}
    named = {
        results / part
        for part in (
            "",
            "ingest",
            "ingest/uc1",
            "ingest/uc1/hospital_a",
            "fhir",
            "fhir/uc1",
            "fhir/uc1/hospital_a",
            "rejects",
            "rejects/uc1",
            "qc/uc1/hospital_a",
            "validation/uc1/hospital_a",
            "keys",
            "ega/uc1",
        )
    }
    assert named <= folders
    assert {str(f.relative_to(results)): oct(mode(f)) for f in folders if mode(f) != 0o700} == {}
    plaintext = [
        results / "ingest" / "uc1" / "hospital_a" / "records.csv",
        results / "fhir" / "uc1" / "hospital_a.ndjson",
        results / "rejects" / "uc1" / "hospital_a.tsv",
        *(results / "fhir" / "uc1" / "hospital_a").glob("psn-*.json"),
    ]
    assert {oct(mode(p)) for p in plaintext} == {"0o600"}
    demo = workflow_run.root / "demo" / "uc1"
    assert (oct(mode(demo)), {oct(mode(p)) for p in demo.iterdir()}) == ("0o700", {"0o600"})


def test_oncofhir_demo_writes_exports_as_the_rule_does(tmp_path: Path) -> None:
    done = subprocess.run(
        oncofhir("demo", "--out", str(tmp_path / "demo"), "--records", "3", "--centers", "2"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    exports = list((tmp_path / "demo").rglob("*.csv"))
    assert len(exports) == 2 * len([p for p in DICTIONARIES.iterdir() if (p / "mapping.yaml").exists()])
    assert {oct(mode(p)) for p in exports} == {"0o600"}
    assert {oct(mode(p.parent)) for p in exports} | {oct(mode(tmp_path / "demo"))} == {"0o700"}


def test_the_secret_fingerprint_is_recorded_and_a_changed_secret_stops_the_workflow(workflow_run: Run) -> None:
    """Each center's summary and every manifest row name the secret's fingerprint; another secret is refused before
    any job, with the way out; --forcerun fhir (every center rebuilt with the new secret) is allowed."""
    results = workflow_run.results
    fingerprint = secret_fingerprint(SECRET.encode())
    assert (
        fingerprint
        == "hmac-sha256:"
        + __import__("hmac").new(SECRET.encode(), b"oncofhir-secret-fingerprint-v1", "sha256").hexdigest()[:16]
    )
    for center in CENTERS:
        assert json.loads((results / "fhir" / "uc1" / f"{center}.summary.json").read_text())["secret_fingerprint"] == (
            fingerprint
        )
    rows = (results / "ega" / "manifest.tsv").read_text().splitlines()
    assert rows[0].endswith("\tsecret_fingerprint") and {r.rsplit("\t", 1)[1] for r in rows[1:]} == {fingerprint}
    logs_before = sorted(str(p) for p in (results / "logs").rglob("*"))
    summary = results / "fhir" / "uc1" / "hospital_a.summary.json"
    before = summary.stat().st_mtime_ns
    refused = workflow_run.snakemake(OTHER_SECRET)
    assert refused.returncode != 0
    expected = (
        f"ONCOFHIR_PSEUDONYM_KEY is not the secret that made the existing pseudonyms (secret "
        f"{secret_fingerprint(OTHER_SECRET.encode())} now, {fingerprint} in {summary} and 1 more): one deposit "
        "must use one secret. If the change is a mistake, set the project's secret again; to pseudonymise every "
        "center with the new secret, rerun them all: snakemake --forcerun fhir (docs/deposit.md)"
    )
    assert expected in refused.stderr
    assert summary.stat().st_mtime_ns == before
    assert sorted(str(p) for p in (results / "logs").rglob("*")) == logs_before  # no job ran
    planned = workflow_run.snakemake(OTHER_SECRET, "-n", "--forcerun", "fhir")
    assert planned.returncode == 0, planned.stderr[-3000:]
    for center in CENTERS:
        assert f"Building FHIR bundles and tables for uc1/{center}" in planned.stdout + planned.stderr


def test_the_workflow_sweeps_stale_temp_files_under_results_before_its_first_job(workflow_run: Run) -> None:
    """A killed job's temp file of a center no longer in the sheet (no stage of it will run again) is removed by
    the next run that has any job to do; a live writer's temp file stays."""
    folder = workflow_run.results / "fhir" / "uc1"
    host = temp_path(folder / "x").name.split(".oncofhir-tmp-")[1].rsplit("-", 1)[0]
    stale = folder / f".gone.ndjson.oncofhir-tmp-{host}-{_dead_pid()}"
    stale_dir = workflow_run.results / "ega" / "uc1" / f".gone.oncofhir-tmp-{host}-{_dead_pid()}"
    stale_dir.mkdir()
    (stale_dir / "psn-x.json.c4gh").write_bytes(b"x")
    stale.write_bytes(b'{"resourceType": "Bundle"}\n')
    writer = subprocess.Popen(["sleep", "60"])
    try:
        live = folder / f".other.ndjson.oncofhir-tmp-{host}-{writer.pid}"
        live.write_bytes(b"")
        done = workflow_run.snakemake(SECRET, "--forcerun", "run_summary")
        assert done.returncode == 0, done.stderr[-3000:]
        assert (stale.exists(), stale_dir.exists(), live.exists()) == (False, False, True)
    finally:
        writer.kill()
        writer.wait()
        live.unlink()


# ------------------------------------------------------------------------------------------ out of resources


def _mount_tmpfs(where: Path, options: str):
    """Mount a small tmpfs at ``where`` (needs root and mount permission; the test is skipped otherwise)."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs."""
    yield from _mount_tmpfs(tmp_path / "disk", "size=1M")


@pytest.fixture
def no_inodes_disk(tmp_path: Path):
    """A tmpfs where no file can be created: its few inodes are used up."""
    for where in _mount_tmpfs(tmp_path / "disk", "size=1M,nr_inodes=4"):
        with pytest.raises(OSError, match="No space left on device"):
            for k in range(10):
                (where / f"f{k}").touch()
        yield where


def _ingest_command(dictionary: Path, export: Path, out: Path, *log: str) -> list[str]:
    return oncofhir(
        *log,
        *("ingest", "--dictionary", str(dictionary), "--export", str(export)),
        *("--records", str(out / "records.csv"), "--rejects", str(out / "rejects.tsv")),
        *("--report", str(out / "report.json")),
    )


def test_a_full_disk_is_one_line_exit_5_and_leaves_no_partial_file(tmp_path: Path, small_disk: Path, compiled):
    dictionary = tmp_path / "uc1.json"
    stage_compile(DICTIONARIES / "uc1", ONTOLOGIES, dictionary)
    export = tmp_path / "export.csv"
    export.write_text(generate(compiled["uc1"], "hospital_a", 25000, seed=5), encoding="utf-8")
    assert export.stat().st_size > 1 << 20  # its normalised records cannot fit
    full = subprocess.run(_ingest_command(dictionary, export, small_disk), capture_output=True, text=True, timeout=300)
    message = f"oncofhir: error: no space left on {small_disk}/records.csv: free some space there and rerun\n"
    assert (full.returncode, full.stderr) == (5, message)
    assert sorted(small_disk.iterdir()) == []  # no partial file, no temp file
    log = small_disk / "ingest.log"
    logged = subprocess.run(
        _ingest_command(dictionary, export, small_disk, "--log", str(log)), capture_output=True, text=True, timeout=300
    )
    assert (logged.returncode, logged.stderr) == (5, f"{message}(log: {log})\n")
    assert [p.name for p in small_disk.iterdir()] == ["ingest.log"]
    # a disk so full that even the log cannot be written: still one line on the terminal, never a traceback
    with open(small_disk / "filler", "wb", buffering=0) as handle, pytest.raises(OSError):
        while True:
            handle.write(b"\0" * 65536)
    (small_disk / "ingest.log").unlink()
    logged = subprocess.run(
        _ingest_command(dictionary, export, small_disk, "--log", str(log)), capture_output=True, text=True, timeout=300
    )
    assert (logged.returncode, logged.stderr) == (5, f"{message}(log: {log})\n")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "ingest.log"]


def test_out_of_memory_is_one_line_exit_5(tmp_path: Path) -> None:
    """Under a 400 MB address-space limit the demo generator runs out of memory: one line, exit 5, no file."""
    limit = 400 * 2**20  # room for the imports (C extensions map their segments); the records cannot fit

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out = tmp_path / "demo"
    done = subprocess.run(
        oncofhir("demo", "--out", str(out), "--records", "100000000", "--centers", "2"),
        cwd=REPO,
        preexec_fn=cap,  # only sets a resource limit in the child
        capture_output=True,
        text=True,
        timeout=300,
    )
    expected = "oncofhir: error: out of memory: give the job more memory (or split the export) and rerun\n"
    assert (done.returncode, done.stderr) == (5, expected)
    assert not out.exists() or not list(out.rglob("*.csv"))


def test_a_log_that_cannot_be_created_on_a_full_disk_is_one_line_exit_5(
    tmp_path: Path, no_inodes_disk: Path, compiled
) -> None:
    dictionary, _ = _ingested(tmp_path, compiled, 5)
    log = no_inodes_disk / "ingest.log"
    done = subprocess.run(
        _ingest_command(dictionary, tmp_path / "export.csv", tmp_path / "out", "--log", str(log)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    expected = f"oncofhir: error: no space left on {log}: free some space there and rerun\n"
    assert (done.returncode, done.stderr) == (5, expected)
    assert not (tmp_path / "out").exists()
