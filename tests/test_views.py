"""View generator, Parquet tables, DuckDB and the round-trip proof (docs/tables.md)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import DICTIONARIES, ONTOLOGIES, SHARED_REFERENCE, stage_fhir_again

from oncofhir.cli import main
from oncofhir.demo import write_demo
from oncofhir.dictionary import compile_dictionary
from oncofhir.dictionary.compiled import load_compiled
from oncofhir.pipeline import convert
from oncofhir.views.bindings import wide_bindings
from oncofhir.views.generate import KEY_COLUMNS, views_for, write_views
from oncofhir.views.runner import CompiledView
from oncofhir.views.stage import TableOutputs, stage_tables
from oncofhir.views.tables import QueryError, query, table_files, write_database

USE_CASES = sorted(p.name for p in DICTIONARIES.iterdir() if (p / "mapping.yaml").exists())


@pytest.mark.parametrize("use_case", USE_CASES)
def test_every_mapped_variable_has_a_wide_column(use_case: str) -> None:
    dd = compile_dictionary(DICTIONARIES / use_case, ONTOLOGIES)
    views = views_for(dd)
    wide = CompiledView(views[0])
    assert views[0]["name"] == f"{use_case}_patients"
    assert views[0]["resourceType"] == "ViewDefinition"
    names = [c.name for c in wide.columns]
    assert names[:2] == list(KEY_COLUMNS)
    mapped = wide_bindings(dd)
    assert set(mapped) == set(dd.fields) - {dd.record_id}
    for variable in mapped:
        assert variable in names
    assert {v["name"] for v in views[1:]} <= {
        f"{use_case}_{s}" for s in ("observations", "conditions", "procedures", "medications")
    }


def _convert(tmp: Path, use_case: str, export: Path, dictionaries: Path = DICTIONARIES) -> Path:
    out = tmp / use_case
    convert(dictionaries / use_case, ONTOLOGIES, export, out, bundle_files=False)
    return out


def _tables(out: Path, center: str = "c1", dictionary: Path | None = None) -> dict:
    compiled = dictionary or out / "work" / "dictionary.json"
    write_views(load_compiled(compiled), out / "views")
    return stage_tables(
        compiled,
        out / "views",
        out / "bundles.ndjson",
        out / "tables" / center,
        center,
        root=out / "tables",
        records=out / "work" / "records.csv",
        index=out / "index.tsv",
        roundtrip_json=out / "roundtrip.json",
        roundtrip_tsv=out / "roundtrip.tsv",
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    write_demo(DICTIONARIES, folder, seed=7, records=40, centers=2)
    return folder


@pytest.mark.parametrize("use_case", USE_CASES)
def test_round_trip_recovers_every_demo_value(demo: Path, tmp_path: Path, use_case: str) -> None:
    export = sorted((demo / use_case).glob("*.csv"))[0]
    out = _convert(tmp_path, use_case, export)
    result = _tables(out)
    rt = result["roundtrip"]
    assert rt["failures"] == []
    assert rt["passed"] is True
    assert rt["recovered_percent"] == 100.0
    assert rt["totals"]["recovered"] > 100
    bundles = len((out / "bundles.ndjson").read_bytes().splitlines())
    assert result["rows"][f"{use_case}_patients"] == bundles
    table = pq.read_table(out / "tables" / "c1" / f"{use_case}_patients.parquet")
    assert table.num_rows == bundles
    assert table.column_names[:3] == ["center", "patient_id", "bundle_id"]
    report = json.loads((out / "roundtrip.json").read_text())
    assert report["passed"] is True and report["bundles"] == bundles


@pytest.mark.parametrize("use_case", USE_CASES)
def test_tables_built_in_the_fhir_stage_equal_tables_from_the_ndjson(demo: Path, tmp_path: Path, use_case: str) -> None:
    """The workflow runs the views over each bundle as the FHIR stage writes it (never parsed back): the Parquet
    files and the round trip must be what the views give over the written NDJSON, line by line."""
    export = sorted((demo / use_case).glob("*.csv"))[-1]
    out = _convert(tmp_path, use_case, export)
    direct = _tables(out)  # from the NDJSON; also writes the views
    again = tmp_path / "in-stage"
    tables = TableOutputs(
        out / "views", again / "tables" / "c1", "c1", again / "tables", again / "rt.json", again / "rt.tsv"
    )
    summary = stage_fhir_again(out, again, tables=tables)
    assert (again / "bundles.ndjson").read_bytes() == (out / "bundles.ndjson").read_bytes()
    assert summary["tables"]["rows"] == direct["rows"]
    assert summary["tables"]["roundtrip"] == direct["roundtrip"]
    assert (again / "rt.json").read_bytes() == (out / "roundtrip.json").read_bytes()
    assert (again / "rt.tsv").read_bytes() == (out / "roundtrip.tsv").read_bytes()
    names = sorted(p.name for p in (out / "tables" / "c1").glob("*.parquet"))
    assert names == sorted(p.name for p in (again / "tables" / "c1").glob("*.parquet")) and len(names) >= 2
    for name in names:
        assert pq.read_table(again / "tables" / "c1" / name).equals(pq.read_table(out / "tables" / "c1" / name))
    assert "tables" not in json.loads((again / "summary.json").read_text())  # the summary file is unchanged


@pytest.mark.skipif(SHARED_REFERENCE is None, reason="../shared/reference/ (reference exports) is absent")
@pytest.mark.parametrize("use_case", USE_CASES)
def test_round_trip_on_reference_exports(tmp_path: Path, use_case: str) -> None:
    export = SHARED_REFERENCE / "eucanimage-fhir" / use_case / "export_test.csv"
    if not export.exists():
        pytest.skip(f"{export} is absent")
    out = _convert(tmp_path, use_case, export)
    rt = _tables(out)["roundtrip"]
    assert rt["failures"] == []
    assert rt["recovered_percent"] == 100.0


def test_broken_mapping_entry_names_the_lost_variable(demo: Path, tmp_path: Path) -> None:
    """Bundles from the real uc68 mapping, views from a copy whose second lesion's grade reads like the first's."""
    export = sorted((demo / "uc68").glob("*.csv"))[0]
    broken = tmp_path / "dictionaries"
    shutil.copytree(DICTIONARIES / "uc68", broken / "uc68")
    mapping = broken / "uc68" / "mapping.yaml"
    text = mapping.read_text()
    old = (
        "value: {variable: grade_2, map: histologic_grade}, bodySite: {variable: laterality_2, map: breast_side},\n"
        "     note: Second biopsied lesion}"
    )
    assert old in text
    mapping.write_text(text.replace(old, old.replace("note: Second biopsied lesion", "note: Lesion two")))
    out = _convert(tmp_path, "uc68", export)
    compiled = tmp_path / "broken.json"
    compiled.write_text(compile_dictionary(broken / "uc68", ONTOLOGIES).to_json())
    rt = _tables(out, dictionary=compiled)["roundtrip"]
    assert rt["passed"] is False
    failed = {f["variable"]: f for f in rt["failures"]}
    # grade_2's selector no longer finds its resource; grade's now also matches the second lesion's
    assert set(failed) == {"grade", "grade_2"}
    assert failed["grade_2"]["lost"] > 0
    assert rt["totals"]["lost"] + rt["totals"]["changed"] == sum(f["lost"] + f["changed"] for f in failed.values())
    report = json.loads((out / "roundtrip.json").read_text())
    assert report["duplicate_rows"] > 0  # patients with both lesions' grade get two rows


def test_tables_are_private_and_queryable(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = sorted((demo / "uc1").glob("*.csv"))[0]
    out = _convert(tmp_path, "uc1", export)
    tables = out / "tables"
    _tables(out, center="hospital_x")
    parquet = tables / "hospital_x" / "uc1_patients.parquet"
    assert stat.S_IMODE(os.stat(parquet).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(parquet.parent).st_mode) == 0o700
    # the cohort database expects <tables>/<use case>/<center>/<view>.parquet
    root = tmp_path / "cohort"
    shutil.copytree(tables, root / "uc1")
    db = root / "cohort.duckdb"
    write_database(root, table_files(root), db)
    bundles = len((out / "bundles.ndjson").read_bytes().splitlines())
    assert query(db, "SELECT count(*) FROM uc1_patients")[1] == [(bundles,)]
    assert main(["query", "--db", str(db), "SELECT count(*) AS n, min(center) AS c FROM uc1_patients"]) == 0
    assert capsys.readouterr().out == f"n\tc\n{bundles}\thospital_x\n"
    with pytest.raises(QueryError, match="query failed: Catalog Error"):
        query(db, "SELECT * FROM no_such_table")
    shutil.rmtree(root / "uc1")
    assert main(["query", "--db", str(db), "SELECT count(*) FROM uc1_patients"]) == 2
    assert "deletes plaintext tables once encrypted" in capsys.readouterr().err


def test_tables_are_deposited_verified_and_rebuilt(demo: Path, tmp_path: Path) -> None:
    from oncofhir.deposit.keys import generate_demo_keys, generate_keypair
    from oncofhir.deposit.manifest import read_manifest, verify
    from oncofhir.errors import InputDataError
    from oncofhir.views.deposit import decrypt_tables, encrypt_tables

    export = sorted((demo / "uc1").glob("*.csv"))[0]
    out = _convert(tmp_path, "uc1", export)
    _tables(out, center="hospital_x")
    keys = generate_demo_keys(tmp_path / "keys")
    ega = tmp_path / "ega"
    manifest = ega / "tables" / "uc1" / "hospital_x.manifest.tsv"
    result = encrypt_tables(
        out / "tables" / "hospital_x",
        ega / "tables" / "uc1" / "hospital_x",
        manifest,
        use_case="uc1",
        center="hospital_x",
        recipients=[str(keys["ega"][0]), str(keys["consortium"][0])],
    )
    rows = read_manifest(manifest)
    assert result["files"] == len(rows) == len(list((out / "tables" / "hospital_x").glob("*.parquet")))
    assert {r["file"] for r in rows} >= {"tables/uc1/hospital_x/uc1.hospital_x.uc1_patients.parquet.c4gh"}
    assert all(r["pseudonym"] == "" for r in rows)
    assert verify(manifest, root=ega, private_key=keys["consortium"][1]) == []
    rebuilt = tmp_path / "download"
    done = decrypt_tables([ega / "tables"], keys["ega"][1], rebuilt)
    assert done["files"] == len(rows)
    original = pq.read_table(out / "tables" / "hospital_x" / "uc1_patients.parquet")
    assert pq.read_table(rebuilt / "uc1" / "hospital_x" / "uc1_patients.parquet").equals(original)
    assert query(rebuilt / "cohort.duckdb", "SELECT count(*) FROM uc1_patients")[1] == [(original.num_rows,)]
    generate_keypair(tmp_path / "outsider.sec", tmp_path / "outsider.pub")
    with pytest.raises(InputDataError, match=r"uc1\.hospital_x\.uc1_conditions\.parquet\.c4gh: does not decrypt"):
        decrypt_tables([ega / "tables"], tmp_path / "outsider.sec", tmp_path / "other")


def test_the_cohort_database_is_built_from_the_deposit_with_the_rows_inside(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The workflow's cohort.duckdb under deposit.temp_plaintext: every center's encrypted tables, decrypted in
    memory, as tables holding the same rows as the Parquet files (no decrypted file on disk), 0600 in 0700."""
    from oncofhir.deposit.keys import generate_demo_keys
    from oncofhir.views.deposit import encrypt_tables

    keys = generate_demo_keys(tmp_path / "keys")
    ega = tmp_path / "ega"
    originals = {}
    for export in sorted((demo / "uc1").glob("*.csv")):
        center = export.stem
        out = _convert(tmp_path / center, "uc1", export)
        _tables(out, center=center)
        encrypt_tables(
            out / "tables" / center,
            ega / "tables" / "uc1" / center,
            ega / "tables" / "uc1" / f"{center}.manifest.tsv",
            use_case="uc1",
            center=center,
            recipients=[str(keys["ega"][0]), str(keys["consortium"][0])],
        )
        originals[center] = pq.read_table(out / "tables" / center / "uc1_patients.parquet")
    assert len(originals) == 2
    results = tmp_path / "results"
    results.mkdir(mode=0o755)
    db = results / "tables" / "cohort.duckdb"
    folders = [str(ega / "tables" / "uc1" / c) for c in sorted(originals)]
    assert main(["cohort", "--from-deposit", *folders, "--sk", str(keys["consortium"][1]), "--out", str(db)]) == 0
    assert capsys.readouterr().out == f"{db}: 3 table(s) with the rows of 6 decrypted table file(s)\n"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(db.parent).st_mode) == 0o700
    assert sorted(p.name for p in db.parent.iterdir()) == ["cohort.duckdb"]  # no decrypted Parquet, no temp file
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        rows = con.execute("SELECT * FROM uc1_patients").fetchall()
    finally:
        con.close()
    assert set(kinds.values()) == {"BASE TABLE"} and "uc1_patients" in kinds  # rows inside, not views
    import pyarrow as pa

    expected = pa.concat_tables([originals[c] for c in sorted(originals)])
    assert rows == [tuple(row.values()) for row in expected.to_pylist()]
    assert query(db, "SELECT count(*) FROM uc1_patients")[1] == [(expected.num_rows,)]
    # `oncofhir query ... | head -1`: the reader going away early is no error
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "oncofhir", "query", "--db", str(db), "SELECT * FROM range(300000)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline() == b"range\n"
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""


def test_the_cohort_key_must_be_a_recipients(tmp_path: Path) -> None:
    from oncofhir.deposit.keys import generate_keypair
    from oncofhir.errors import ConfigError
    from oncofhir.views.cohort_key import check_cohort_key

    generate_keypair(tmp_path / "ega.sec", tmp_path / "ega.pub")
    generate_keypair(tmp_path / "other.sec", tmp_path / "other.pub")
    check_cohort_key(tmp_path / "ega.sec", [str(tmp_path / "ega.pub")])
    with pytest.raises(ConfigError, match=r"other\.sec: tables\.cohort\.sk: this private key belongs to none of"):
        check_cohort_key(tmp_path / "other.sec", [str(tmp_path / "ega.pub")])


def test_missing_bundles_is_one_line_exit_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dd = compile_dictionary(DICTIONARIES / "uc1", ONTOLOGIES)
    compiled = tmp_path / "uc1.json"
    compiled.write_text(dd.to_json())
    write_views(dd, tmp_path / "views")
    missing = tmp_path / "none.ndjson"
    args = ["tables", "--dictionary", str(compiled), "--views-dir", str(tmp_path / "views"), "--ndjson", str(missing)]
    assert main([*args, "--out-dir", str(tmp_path / "t"), "--center", "a"]) == 4
    assert (
        capsys.readouterr().err == f"oncofhir: error: {missing}: cannot read the bundles: No such file or directory\n"
    )


def test_cohort_over_a_missing_tables_folder_is_a_usage_error(tmp_path: Path, capsys) -> None:
    """It wrote an empty database and said "0 table(s) over 0 Parquet file(s)", exit 0."""
    missing = tmp_path / "nothere"
    assert main(["cohort", "--tables-dir", str(missing), "--out", str(tmp_path / "c.duckdb")]) == 2
    assert capsys.readouterr().err == f"oncofhir: error: --tables-dir {missing}: folder not found\n"
    assert not (tmp_path / "c.duckdb").exists()


def test_a_unit_with_only_a_data_absent_extension_stays_on_the_fast_path() -> None:
    # a dose whose unit is unknown: "_code" (the extension) and no "code"; fhirpathpy yields nothing for it, and so
    # must the compiled path, without handing the resource to fhirpathpy (that fallback cost 5 % of uc7's stage)
    from oncofhir.views.fhirpath import Env
    from oncofhir.views.fhirpath import Path as FhirPath

    unknown = {
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]
    }
    resource = {"resourceType": "MedicationAdministration", "dosage": {"dose": {"value": 81.5, "_code": unknown}}}
    env = Env({}, resource)
    unit = FhirPath("dosage.dose.code", {})
    assert unit.slow(resource, env) == []
    assert unit.fast([resource], env) == []  # before: raised Fallback (evaluated by fhirpathpy)
    assert FhirPath("dosage.dose.value", {}).fast([resource], env) == [81.5]
    # not the end of the expression: the primitive's extension is fhirpathpy's to find
    view = CompiledView(
        {
            "resource": "MedicationAdministration",
            "select": [
                {
                    "forEach": "dosage.dose",
                    "column": [
                        {"name": "unit", "path": "code"},
                        {"name": "value", "path": "value", "type": "decimal"},
                        {
                            "name": "why",
                            "path": "code.extension('http://hl7.org/fhir/StructureDefinition/data-absent-reason').value.ofType(code)",
                        },
                    ],
                }
            ],
        }
    )
    assert view.rows(resource) == [(None, 81.5, "unknown")]


def test_a_column_pyarrow_refuses_as_it_is_is_converted_per_value() -> None:
    # strings go to pyarrow as they are; an integer in a string column (a fhirpathpy result) is converted with str()
    from oncofhir.views.tables import to_table

    view = CompiledView(
        {
            "resource": "Patient",
            "select": [{"column": [{"name": "a", "path": "id"}, {"name": "n", "path": "id", "type": "decimal"}]}],
        }
    )
    table = to_table(view, [("x", 1), (7, None), (None, 2.5)], "c1")
    assert table.to_pylist() == [
        {"center": "c1", "a": "x", "n": 1.0},
        {"center": "c1", "a": "7", "n": None},
        {"center": "c1", "a": None, "n": 2.5},
    ]
    assert str(table.schema.field("n").type) == "double"


def test_the_table_stage_restores_the_cycle_collector(demo: Path, tmp_path: Path) -> None:
    # the stage pauses the cycle collector (a quarter of its time on 4,000 uc7 patients) and must give it back
    import gc

    out = _convert(tmp_path, "uc1", sorted((demo / "uc1").glob("*.csv"))[0])
    assert gc.isenabled()
    _tables(out, center="hospital_x")
    assert gc.isenabled()
    gc.disable()
    try:
        _tables(out, center="hospital_y")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_choice_names_are_the_r4_models() -> None:
    from fhirpathpy.models import models

    from oncofhir.views.fhirpath import _CHOICE_NAMES

    assert frozenset(p.rsplit(".", 1)[1] for p in models["r4"]["choiceTypePaths"]) == _CHOICE_NAMES


def test_a_table_job_does_not_load_fhirpathpy(demo: Path, tmp_path: Path) -> None:
    # its import is ~0.06 CPU-s of every table job; the generated views never need it (a fresh interpreter: this
    # process has loaded it already)
    import subprocess
    import sys

    out = _convert(tmp_path, "uc7", sorted((demo / "uc7").glob("*.csv"))[0])
    write_views(load_compiled(out / "work" / "dictionary.json"), out / "views")
    code = (
        "import sys; from oncofhir.views.stage import stage_tables; "
        f"r = stage_tables({str(out / 'work' / 'dictionary.json')!r}, {str(out / 'views')!r}, "
        f"{str(out / 'bundles.ndjson')!r}, {str(out / 'tables' / 'c1')!r}, 'c1', root={str(out / 'tables')!r}, "
        f"records={str(out / 'work' / 'records.csv')!r}, index={str(out / 'index.tsv')!r}); "
        "print(r['roundtrip']['passed'], 'fhirpathpy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "True False\n"
