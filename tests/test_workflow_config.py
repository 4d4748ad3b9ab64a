"""Configuration as a first real user meets it (issue #10 items 1, 4, 5, 6, 7; #11 item 5).

Every message is checked in full, at parse time (a dry run that schedules no job and writes no result), through the
whole Snakefile; the relocation and interrupt tests run a small demo for real.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import DICTIONARIES, REPO, workflow_env

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
REAL_SECRET = "a-real-secret-of-32-characters!!"
PREFIX = "oncofhir: configuration error: "


def snakemake(cwd: Path, *args: str, secret: str = REAL_SECRET, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), *args],
        cwd=cwd,
        env=workflow_env(secret),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one configuration-error line; fails unless the run stopped with exit code 2 and nothing else went wrong."""
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-3000:]
    assert "Traceback" not in out and "Failed validating" not in out and "Job stats" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith(PREFIX)]
    assert len(lines) == 1, out[-3000:]
    return lines[0][len(PREFIX) :]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sheet(*rows: str, header: str = "use_case\tcenter\texport") -> str:
    return "".join(f"{line}\n" for line in (header, *rows))


def valid_use_cases() -> str:
    return ", ".join(sorted(p.name for p in DICTIONARIES.iterdir() if (p / "mapping.yaml").is_file()))


# ---- item 7: one line naming the key, the file and the nearest valid key ------------------------------------------


def test_a_config_typo_names_the_key_the_file_and_the_nearest_valid_key(tmp_path: Path) -> None:
    write(tmp_path / "my.yaml", "center: centers.tsv\n")
    result = snakemake(tmp_path, "-n", "--configfile", "my.yaml")
    assert error_line(result) == (
        f"{tmp_path}/my.yaml: unknown config key 'center' (did you mean 'centers'?; config/README.md)"
    )
    assert len((result.stdout + result.stderr).splitlines()) < 5  # was 440 lines of schema


def test_a_nested_typo_and_a_bad_value_name_the_dotted_key(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "deposit: {demo_key: false}\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "a.yaml")) == (
        f"{tmp_path}/a.yaml: unknown config key 'deposit.demo_key' (did you mean 'deposit.demo_keys'?; "
        "config/README.md)"
    )
    write(tmp_path / "b.yaml", "qc: {no_checks: renormalize}\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "b.yaml")) == (
        f"{tmp_path}/b.yaml: config key 'qc.no_checks': 'renormalize' is not one of ['renormalise', 'full_credit'] "
        "(config/README.md)"
    )


# ---- item 7: the centers sheet's line, column and value -----------------------------------------------------------


def test_a_bad_center_id_names_the_sheet_line_column_and_value(tmp_path: Path) -> None:
    write(tmp_path / "centers.tsv", sheet("# a comment line", "uc1\tsite a\tx.csv"))
    write(tmp_path / "my.yaml", "centers: centers.tsv\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "my.yaml")) == (
        "centers.tsv, line 3, column center: invalid value 'site a': Center id (letters, digits, _ and -); used in "
        "output paths."
    )


def test_an_unknown_use_case_lists_the_valid_ones(tmp_path: Path) -> None:
    write(tmp_path / "centers.tsv", sheet("uc1\ta\tdemo/uc1/a.csv", "no_such_use_case\tb\tdemo/x/b.csv"))
    write(tmp_path / "my.yaml", "centers: centers.tsv\ndemo: {folder: demo}\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "my.yaml")) == (
        f"centers.tsv, line 3, column use_case: unknown use case 'no_such_use_case'; valid: {valid_use_cases()} "
        f"(folders of {DICTIONARIES} with a mapping.yaml)"
    )


def test_a_center_listed_twice_names_both_lines(tmp_path: Path) -> None:
    write(tmp_path / "centers.tsv", sheet("uc1\ta\tdemo/uc1/a.csv", "uc3\ta\tdemo/uc3/a.csv", "uc1\ta\tdemo/uc1/b.csv"))
    write(tmp_path / "my.yaml", "centers: centers.tsv\ndemo: {folder: demo}\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "my.yaml")) == (
        "centers.tsv: center uc1/a is listed twice (lines 2 and 4)"
    )


# ---- #11 item 5: a FIFO (or any non-regular file) as export -------------------------------------------------------


def test_a_fifo_export_is_refused_at_the_sheet_check_instead_of_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "export.csv")
    (tmp_path / "folder.csv").mkdir()
    write(tmp_path / "centers.tsv", sheet("uc1\ta\texport.csv"))
    write(tmp_path / "my.yaml", "centers: centers.tsv\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "my.yaml", timeout=60)) == (
        "centers.tsv, line 2, column export: export 'export.csv' of uc1/a is not a regular file but a named pipe "
        f"(FIFO); give the path of the exported CSV file itself (looked for {tmp_path}/export.csv; relative paths "
        f"in the sheet start at its folder {tmp_path})"
    )
    write(tmp_path / "centers.tsv", sheet("uc1\ta\tfolder.csv"))
    assert "is not a regular file but a directory" in error_line(snakemake(tmp_path, "-n", "--configfile", "my.yaml"))


# ---- item 1: real data is never encrypted for the demo keys nor pseudonymised with the demo secret ---------------


def test_real_exports_with_the_shipped_demo_keys_are_refused_before_any_job(tmp_path: Path) -> None:
    """config/README's old "your data" example (centers + results only) kept deposit.demo_keys: true."""
    write(tmp_path / "exports" / "a.csv", "record_id\n1\n")
    write(tmp_path / "centers.tsv", sheet("uc1\ta\texports/a.csv"))
    write(tmp_path / "my.yaml", "centers: centers.tsv\nresults: results\n")
    result = snakemake(tmp_path, "-n", "--configfile", "my.yaml", secret="oncofhir-demo-secret-NOT-for-real-data")
    assert error_line(result) == (
        f"centers.tsv, line 2: export 'exports/a.csv' of uc1/a lies outside the demo folder {REPO}/demo (real data), "
        f"but deposit.demo_keys is true (set in {REPO}/config/config.yaml); the demo keys and the public demo secret "
        "are never for real data. In your config file set deposit: {demo_keys: false, recipients: [<EGA's public "
        "key>, ...]} and put a real secret in ONCOFHIR_PSEUDONYM_KEY (config/README.md)"
    )
    assert not (tmp_path / "results").exists()


def test_real_exports_with_the_demo_secret_are_refused(tmp_path: Path) -> None:
    from oncofhir.deposit.keys import generate_keypair

    (tmp_path / "keys").mkdir()
    generate_keypair(tmp_path / "keys" / "ega.sec", tmp_path / "keys" / "ega.pub")
    write(tmp_path / "exports" / "a.csv", "record_id\n1\n")
    write(tmp_path / "centers.tsv", sheet("uc1\ta\texports/a.csv"))
    write(tmp_path / "my.yaml", "centers: centers.tsv\ndeposit: {demo_keys: false, recipients: [keys/ega.pub]}\n")
    result = snakemake(tmp_path, "-n", "--configfile", "my.yaml", secret="oncofhir-demo-secret-NOT-for-real-data")
    assert error_line(result).startswith(
        "ONCOFHIR_PSEUDONYM_KEY holds the public demo secret, which must never pseudonymise real data; set it to a "
        "random value of at least 16 bytes"
    )


# ---- --config values typed as in a config file (Snakemake leaves nested ones strings) -----------------------------


def test_nested_config_values_from_the_command_line_get_the_schema_types(tmp_path: Path) -> None:
    """Every boolean, integer and number key given as Snakemake's --config passes it (a string): the run plans."""
    result = snakemake(
        tmp_path,
        *("-n", "--cores", "1", "--config", f"results={tmp_path}/results", "ig={enabled: false}"),
        "qc={min_record_score: 12.5, min_center_score: 90, weights: {range: 5}, min_type_scores: {minimal_req: 50}}",
        "demo={records: 7, seed: 3}",
        "deposit={temp_plaintext: no}",
        "ingest={require_complete: false}",
        "privacy={k: 3}",
        "validation={fail_on_error: false, hl7_validator: {timeout: 600}}",
        "fhir={claim_profiles: true}",
        secret="oncofhir-demo-secret-NOT-for-real-data",
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "Job stats" in out, out[-3000:]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("qc={min_center_score: lots}", "config key 'qc.min_center_score': 'lots' is not of type 'number'"),
        ("privacy={k: 2.5}", "config key 'privacy.k': '2.5' is not of type 'integer'"),
        ("ig={enabled: maybe}", "config key 'ig.enabled': 'maybe' is not one of ['auto', true, false]"),
        ("deposit={enabled: 1}", "config key 'deposit.enabled': '1' is not of type 'boolean'"),
        (
            "fhir={identifier_system: 12}",
            "config key 'fhir.identifier_system': '12' does not match '^[a-z][a-z0-9+.-]*:'",
        ),
    ],
)
def test_a_wrong_value_from_the_command_line_is_one_line_naming_the_key(
    tmp_path: Path, value: str, message: str
) -> None:
    result = snakemake(tmp_path, "-n", "--config", value)
    assert error_line(result) == f"--config on the command line: {message} (config/README.md)"


# ---- item 5: paths relative to the file naming them; -s from a data folder ----------------------------------------


def data_folder(root: Path) -> Path:
    """A data manager's folder: config, sheet, keys and exports side by side, every path relative."""
    from oncofhir.deposit.keys import generate_keypair

    data = root / "project"
    (data / "keys").mkdir(parents=True)
    generate_keypair(data / "keys" / "ega.sec", data / "keys" / "ega.pub")
    write(data / "exports" / "uc1_a.csv", "record_id\n1\n")
    write(data / "sheets" / "centers.tsv", sheet("uc1\ta\t../exports/uc1_a.csv"))
    write(
        data / "my.yaml",
        "centers: sheets/centers.tsv\nresults: results\ndeposit: {demo_keys: false, recipients: [keys/ega.pub]}\n",
    )
    return data


def test_paths_resolve_relative_to_the_config_file_that_names_them(tmp_path: Path) -> None:
    """Run from a folder that is neither the checkout nor the data folder: the sheet, its exports and the keys
    are found beside the config file; results go to the working directory."""
    data = data_folder(tmp_path)
    result = snakemake(tmp_path, "-n", "--printshellcmds", "--configfile", "project/my.yaml")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert " --export project/exports/uc1_a.csv " in out and " --recipient project/keys/ega.pub " in out
    assert " --out-dir results/validation/uc1/a " in out
    (data / "keys" / "ega.pub").unlink()
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "project/my.yaml")) == (
        f"{data}/my.yaml: config key 'deposit.recipients': file 'keys/ega.pub' not found (looked for "
        f"{data}/keys/ega.pub; relative paths in a config file start at its folder {data})"
    )
    (data / "exports" / "uc1_a.csv").unlink()
    write(data / "keys" / "ega.pub", "")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "project/my.yaml")) == (
        f"project/sheets/centers.tsv, line 2, column export: export '../exports/uc1_a.csv' of uc1/a does not exist "
        f"(looked for {data}/exports/uc1_a.csv; relative paths in the sheet start at its folder {data}/sheets)"
    )


def test_a_missing_folder_names_the_config_file_and_its_base(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "hl7.yaml", "validation: {hl7_validator: {enabled: true, home: tools/hl7}}\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "conf/hl7.yaml")) == (
        f"{tmp_path}/conf/hl7.yaml: config key 'validation.hl7_validator.home': folder 'tools/hl7' not found "
        f"(looked for {tmp_path}/conf/tools/hl7; relative paths in a config file start at its folder {tmp_path}/conf)"
    )
    result = snakemake(
        tmp_path, "-n", "--config", "dictionaries=dicts", secret="oncofhir-demo-secret-NOT-for-real-data"
    )
    assert error_line(result) == (
        "--config on the command line: config key 'dictionaries': folder 'dicts' not found (looked for "
        f"{tmp_path}/dicts; relative paths on the command line start at the working directory {tmp_path})"
    )


def test_snakefile_from_a_data_folder_loads_the_workflow_defaults(tmp_path: Path) -> None:
    """`snakemake -s /path/to/Snakefile` without a config file still finds config/config.yaml beside the Snakefile
    (the demo), with results in the working directory."""
    result = snakemake(tmp_path, "-n", "--cores", "1", secret="oncofhir-demo-secret-NOT-for-real-data")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "results/fhir/uc7/hospital_c.ndjson" in out and f"{REPO}/demo/uc7/hospital_c.csv" in out
    assert not (tmp_path / "results").exists()


# ---- items 4 and 6: a finished run moved elsewhere; an interrupted run ----------------------------------------------

#: What a self-contained workflow checkout holds (README's layout); the engine comes from the installed package.
CHECKOUT = ("Snakefile", "workflow", "config", "profiles", "resources", "envs")


def small_demo(root: Path, records: int, ig: bool = True) -> Path:
    """A copy of the workflow with a three-center demo sheet: its config keeps every default but the sheet (and,
    with ``ig`` false, the IG: ig.enabled false where a test does not need it)."""
    root.mkdir(parents=True)
    for name in CHECKOUT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    write(root / "config" / "centers.tsv", sheet("uc1\ta\t../demo/uc1/a.csv", "uc3\tb\t../demo/uc3/b.csv"))
    config = (root / "config" / "config.yaml").read_text(encoding="utf-8")
    config = config.replace("records: 60", f"records: {records}")
    if not ig:
        config = config.replace("enabled: auto", "enabled: false")
    write(root / "config" / "config.yaml", config)
    return root


def run_demo(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args],
        cwd=checkout,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_finished_run_copied_to_another_folder_is_still_complete(tmp_path: Path) -> None:
    """No job input or output names the checkout's absolute path (the FHIR definitions were one)."""
    first = small_demo(tmp_path / "first", records=10)
    result = run_demo(first)
    assert result.returncode == 0, result.stderr[-3000:]
    subprocess.run(["cp", "-a", str(first), str(tmp_path / "moved")], check=True)
    moved = run_demo(tmp_path / "moved", "--dry-run")
    out = moved.stdout + moved.stderr
    assert moved.returncode == 0 and "Nothing to be done" in out, out[-3000:]


def _comparable(results: Path) -> dict[str, bytes]:
    """Every deterministic output: all but the encrypted files, keys, manifests (random per run), logs, timings and
    the run's RO-Crate (its run times); the cohort database by its rows (a DuckDB file's bytes differ per write)."""
    skip = ("ega/", "keys/", "logs/", "benchmarks/", "ro-crate/")
    return {
        str(path.relative_to(results)): _database_rows(path) if path.suffix == ".duckdb" else path.read_bytes()
        for path in sorted(results.rglob("*"))
        if path.is_file() and not str(path.relative_to(results)).startswith(skip) and path.name != "index.html"
    }


def _database_rows(path: Path) -> bytes:
    """Every table of a DuckDB database with its rows, in order, as text."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [n for (n,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        return repr([(n, con.execute(f'SELECT * FROM "{n}"').fetchall()) for n in names]).encode()
    finally:
        con.close()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    reference = small_demo(tmp_path_factory.mktemp("uninterrupted") / "checkout", records=150, ig=False)
    assert run_demo(reference).returncode == 0
    return _comparable(reference / "results")


@pytest.mark.parametrize("target", ["process group", "snakemake only"])
def test_an_interrupted_run_completes_on_a_plain_rerun(
    tmp_path: Path, uninterrupted: dict[str, bytes], target: str
) -> None:
    """SIGINT while a per-center stage runs, to the whole process group (Ctrl-C in a terminal: the stage stops) or to
    Snakemake alone (`kill -INT`: the stage finishes, its outputs are marked incomplete). No traceback, and a plain
    `snakemake` (rerun-incomplete in profiles/default) finishes with the outputs of an uninterrupted run."""
    checkout = small_demo(tmp_path / "checkout", records=150, ig=False)
    # One job at a time: when the fhir stage's log exists, that job is inside oncofhir's main() (it opens the log).
    process = subprocess.Popen(
        [*SNAKEMAKE, "--cores", "1"],
        cwd=checkout,
        env=workflow_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log = checkout / "results" / "logs" / "fhir" / "uc1" / "a.log"
    deadline = time.monotonic() + 300
    while not log.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if target == "process group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        os.kill(process.pid, signal.SIGINT)
    out, _ = process.communicate(timeout=300)
    assert process.returncode != 0, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    assert ("oncofhir: interrupted" in out) == (target == "process group"), out[-3000:]
    rerun = run_demo(checkout)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _comparable(checkout / "results") == uninterrupted
    assert "Nothing to be done" in run_demo(checkout, "--dry-run").stdout


def test_the_cli_says_interrupted_in_one_line_with_exit_code_130(tmp_path: Path) -> None:
    """A stage blocked reading its input (a FIFO nobody writes) is interrupted: one line, code 130."""
    fifo = tmp_path / "dictionary.json"
    os.mkfifo(fifo)
    stage = ["ingest", "--dictionary", str(fifo), "--export", "x.csv", "--records", "r.csv", "--rejects", "j.tsv"]
    process = subprocess.Popen(
        ["oncofhir", "--log", str(tmp_path / "ingest.log"), *stage, "--report", "p.json"],
        cwd=tmp_path,
        env=workflow_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the stage has opened the FIFO for reading
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            assert exc.errno == errno.ENXIO and process.poll() is None
            time.sleep(0.01)
    else:
        pytest.fail("the stage never opened its input")
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    os.close(writer)
    assert (process.returncode, err) == (130, "oncofhir: interrupted\n")
    assert (tmp_path / "ingest.log").read_text() == "oncofhir: interrupted\n"


def test_a_script_rule_interrupted_says_so_in_one_line_with_exit_code_130(tmp_path: Path) -> None:
    """The small rules' scripts run their stage through oncofhir.smk.run: SIGINT inside the stage ends the same way."""
    code = (
        "import os, signal, types\n"
        "from oncofhir.smk import run\n"
        f"sm = types.SimpleNamespace(log=[{str(tmp_path / 'stage.log')!r}])\n"
        "run(sm, lambda: os.kill(os.getpid(), signal.SIGINT) or signal.pause())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (130, "oncofhir: interrupted\n")
    assert (tmp_path / "stage.log").read_text() == "oncofhir: interrupted\n"


# ---- the module's rules, without Snakemake ------------------------------------------------------------------------


def test_only_typed_keys_of_the_command_line_layer_are_read_again() -> None:
    """Booleans, integers and numbers where the schema says so, in --config only; strings stay strings."""
    import yaml

    from oncofhir.workflow_config import ConfigSource, coerce_cli_config

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    cli = {
        "ig": {"enabled": "true", "canonical": "https://x.org/fhir"},
        "qc": {"weights": {"range": "5"}, "min_record_score": "12.5", "no_checks": "full_credit"},
        "validation": {"hl7_validator": {"enabled": "yes", "timeout": "600", "memory": "8g"}},
        "fhir": {"identifier_system": "urn:x:1"},
        "privacy": {"k": "2.5"},
        "deposit": {"recipients": ["1.pub"]},
    }
    config = {
        "results": "r",
        "ig": {"enabled": "true", "canonical": "https://x.org/fhir"},
        "fhir": {"claim_profiles": True},
    }
    file_layer = ConfigSource("my.yaml", REPO, {"ig": {"enabled": "true"}})
    sources = [file_layer, ConfigSource("--config", REPO, cli)]
    coerce_cli_config(config, schema, sources)
    typed = {
        "ig": {"enabled": True, "canonical": "https://x.org/fhir"},
        "qc": {"weights": {"range": 5}, "min_record_score": 12.5, "no_checks": "full_credit"},
        "validation": {"hl7_validator": {"enabled": True, "timeout": 600, "memory": "8g"}},
        "fhir": {"identifier_system": "urn:x:1"},
        "privacy": {"k": "2.5"},  # no integer: left for the schema to refuse, naming the key
        "deposit": {"recipients": ["1.pub"]},
    }
    assert sources[1].data == typed
    assert sources[0] is file_layer and file_layer.data == {"ig": {"enabled": "true"}}  # a file's own YAML: as is
    assert config == {"results": "r", **typed, "fhir": {"claim_profiles": True, "identifier_system": "urn:x:1"}}


def test_resolved_paths_are_relative_below_the_working_directory_and_absolute_elsewhere(tmp_path: Path) -> None:
    from oncofhir.workflow_config import resolve_path

    run = tmp_path / "run"
    assert resolve_path("centers.tsv", run / "config", run) == "config/centers.tsv"
    assert resolve_path("../demo", run / "config", run) == "demo"
    assert resolve_path("../../exports/a.csv", run / "config", run) == f"{tmp_path}/exports/a.csv"
    assert resolve_path("/data/a.csv", run / "config", run) == "/data/a.csv"
    assert resolve_path("~/keys/ega.pub", run, run) == f"{Path.home()}/keys/ega.pub"


def test_an_unknown_check_type_in_qc_weights_names_the_nearest_one(tmp_path: Path) -> None:
    import yaml

    from oncofhir.errors import ConfigError
    from oncofhir.workflow_config import check_config, config_sources

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = write(tmp_path / "my.yaml", "qc: {weights: {minimal: 10}}\n")
    sources = config_sources(REPO / "config" / "config.yaml", [config], {}, tmp_path)
    with pytest.raises(ConfigError) as raised:
        check_config({}, schema, sources)
    assert str(raised.value) == (
        f"{config}: unknown config key 'qc.weights.minimal' (did you mean 'qc.weights.minimal_req'?; config/README.md)"
    )


def test_all_qc_weights_0_stop_the_run_before_any_job(tmp_path: Path) -> None:
    """A partial qc.weights merged over the defaults that leaves no weight above 0 used to pass the config check and
    fail every center's QC job; it is a configuration error at parse time, naming the file that set it."""
    zero = ", ".join(
        f"{name}: 0" for name in ("minimal_req", "mandatory_req", "length", "datatype", "permissible", "range")
    )
    write(tmp_path / "w.yaml", f"qc: {{weights: {{{zero}}}}}\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "w.yaml")) == (
        f"{tmp_path}/w.yaml: config key 'qc.weights': every weight is 0, so no score can be computed; give at least "
        "one check type a weight above 0 (config/README.md)"
    )


def test_a_bad_pool_threshold_stops_the_run_before_any_job_naming_the_key(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", "qc: {pool: {drift: {alpha: 0}}}\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "p.yaml")) == (
        f"{tmp_path}/p.yaml: config key 'qc.pool.drift.alpha': 0 is less than or equal to the minimum of 0 "
        "(config/README.md)"
    )


def test_a_folder_given_as_the_centers_sheet_says_folder_not_missing(tmp_path: Path) -> None:
    (tmp_path / "sheets").mkdir()
    write(tmp_path / "my.yaml", "centers: sheets\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "my.yaml")) == (
        f"{tmp_path}/my.yaml: config key 'centers': 'sheets' is not a file but a folder (looked for "
        f"{tmp_path}/sheets; relative paths in a config file start at its folder {tmp_path})"
    )


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        ("DictionaryError('mapping.yaml: bad key')", 3, "oncofhir: error: mapping.yaml: bad key"),
        ("InputDataError('a.csv: empty')", 4, "oncofhir: error: a.csv: empty"),
        (
            "OSError(errno.ENOSPC, 'No space left on device', 'out.json')",
            5,
            "oncofhir: error: no space left on out.json: free some space there and rerun",
        ),
        ("NotADirectoryError(errno.ENOTDIR, 'Not a directory', 'a/b')", 2, "oncofhir: error: a/b: Not a directory"),
        ("KeyError('bug')", 70, "oncofhir: internal error, see {log}"),
    ],
)
def test_a_script_rule_exits_with_the_documented_code(tmp_path: Path, raised: str, code: int, message: str) -> None:
    """oncofhir.smk.run (the script: rules, e.g. compile_dictionary) used to exit 1 for every error: a dictionary
    error is 3, input data 4, a full disk 5, a bug 70, as the CLI's commands."""
    log = tmp_path / "stage.log"
    script = (
        "import errno, types\n"
        "from oncofhir.errors import DictionaryError, InputDataError\n"
        "from oncofhir.smk import run\n"
        f"sm = types.SimpleNamespace(log=[{str(log)!r}])\n"
        "def stage():\n"
        f"    raise {raised}\n"
        "run(sm, stage)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == code
    first = message.format(log=log)
    assert result.stderr.splitlines()[0] == first
    assert "Traceback" not in result.stderr


def test_a_comma_separated_centers_sheet_says_tabs(tmp_path: Path) -> None:
    """A sheet saved as CSV said "missing column(s) use_case, center, export (...; found use_case,center,export)"."""
    write(tmp_path / "centers.tsv", "use_case,center,export\nuc1,a,a.csv\n")
    write(tmp_path / "my.yaml", "centers: centers.tsv\n")
    assert error_line(snakemake(tmp_path, "-n", "--configfile", "my.yaml")) == (
        "centers.tsv, line 1: comma-separated; the centers sheet is a TSV file: separate use_case, center, "
        "export by tabs (save as 'Text (tab-delimited)' from a spreadsheet)"
    )
