"""The stages end to end, as the rules run them: reconciliation, determinism, permissions, safe file names."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers import DICTIONARIES, ONTOLOGIES

from oncofhir.cli import main
from oncofhir.demo import generate
from oncofhir.errors import InputDataError
from oncofhir.pipeline import stage_compile, stage_fhir, stage_ingest


def run(tmp: Path, use_case: str, export: Path, **kwargs) -> dict:
    compiled = tmp / "dict.json"
    stage_compile(DICTIONARIES / use_case, ONTOLOGIES, compiled)
    ing = tmp / "ingest"
    stage_ingest(compiled, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
    return stage_fhir(
        compiled,
        ing / "records.csv",
        ing / "rejects.tsv",
        ing / "report.json",
        tmp / "fhir" / "center",
        tmp / "fhir" / "center.ndjson",
        tmp / "fhir" / "center.index.tsv",
        tmp / "rejects" / "center.tsv",
        tmp / "fhir" / "center.summary.json",
        **kwargs,
    )


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_demo_generator_is_seeded_and_realistic(compiled) -> None:
    a = generate(compiled["uc7"], "hospital_a", 40, seed=7)
    assert a == generate(compiled["uc7"], "hospital_a", 40, seed=7)
    assert a != generate(compiled["uc7"], "hospital_a", 40, seed=8)
    b = generate(compiled["uc7"], "hospital_b", 40, seed=7)
    assert b.startswith("\ufeffrecord_id,redcap_data_access_group,sex,")
    assert "\r\n" in b and "\r\n" not in a
    lines = a.splitlines()
    assert len(lines) == 1 + 40 + 2  # header, records, a duplicated row and a blank-id row


def test_reconciles_and_reruns_byte_identical(tmp_path: Path, compiled) -> None:
    export = tmp_path / "export.csv"
    export.write_text(generate(compiled["uc7"], "hospital_a", 50, seed=3), encoding="utf-8")
    first = run(tmp_path / "one", "uc7", export)
    second = run(tmp_path / "two", "uc7", export)
    assert first == second
    assert first["rows_in"] == 52
    assert first["bundles"] + first["rejected"] == 52
    assert first["rejected"] == 3  # both rows of the duplicated id and the blank id
    assert digest_tree(tmp_path / "one" / "fhir") == digest_tree(tmp_path / "two" / "fhir")
    ndjson = (tmp_path / "one" / "fhir" / "center.ndjson").read_bytes().splitlines()
    assert len(ndjson) == first["bundles"]
    assert all(json.loads(line)["resourceType"] == "Bundle" for line in ndjson)


def test_plaintext_outputs_are_owner_only(tmp_path: Path, compiled) -> None:
    export = tmp_path / "export.csv"
    export.write_text(generate(compiled["uc1"], "hospital_a", 12, seed=1), encoding="utf-8")
    run(tmp_path, "uc1", export)
    assert (tmp_path / "fhir" / "center").stat().st_mode & 0o777 == 0o700
    for path in [*(tmp_path / "fhir").rglob("*"), *(tmp_path / "ingest").iterdir(), *(tmp_path / "rejects").iterdir()]:
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o600, path


def test_record_ids_never_become_paths(tmp_path: Path) -> None:
    ids = ["../../escape", "a/b", "x y", "CON", "é", ".hidden", "UC1_1", "uc1_1", "ok-1.2"]
    header = "record_id,sex,onsetage,indeterm_nodule,diag_method,hep_b,hep_c,ald,autoimm_hep,nafld,psc,others,"
    header += "chronic_hep,cirrhosis,child_pugh"
    lines = [header, *(f'"{rid}",0,60,0,0,2,2,2,2,1,2,2,1,2,1' for rid in ids)]
    export = tmp_path / "export.csv"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = run(tmp_path, "uc1", export)
    assert summary["bundles"] == len(ids)
    bundle_dir = tmp_path / "fhir" / "center"
    names = sorted(os.listdir(bundle_dir))
    assert len(names) == len(ids)
    assert {p.parent for p in bundle_dir.rglob("*.json")} == {bundle_dir}
    index = [line.split("\t") for line in (tmp_path / "fhir" / "center.index.tsv").read_text().splitlines()[1:]]
    files = {rid: name for rid, _key, name, *_ in index}
    assert files["ok-1.2"] == "ok-1.2.json"
    assert files["UC1_1"] == "UC1_1.json"
    assert files["uc1_1"].startswith("rid-")  # would collide with UC1_1.json on a case-insensitive file system
    for rid in ("../../escape", "a/b", "x y", "CON", "é", ".hidden"):
        assert files[rid].startswith("rid-") and files[rid].endswith(".json"), rid
    for rid, name in files.items():
        bundle = json.loads((bundle_dir / name).read_text())
        assert bundle["entry"][0]["resource"]["identifier"][0]["value"] == rid


def test_cli_convert_and_readable_errors(tmp_path: Path, compiled, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "export.csv"
    export.write_text(generate(compiled["uc3"], "hospital_a", 10, seed=2), encoding="utf-8")
    assert (
        main(
            [
                "convert",
                str(DICTIONARIES / "uc3"),
                str(export),
                "--out",
                str(tmp_path / "out"),
                "--ontologies",
                str(ONTOLOGIES),
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows_in"] == 12 and summary["bundles"] + summary["rejected"] == 12
    missing = tmp_path / "nope.csv"
    assert (
        main(
            [
                "convert",
                str(DICTIONARIES / "uc3"),
                str(missing),
                "--out",
                str(tmp_path / "o2"),
                "--ontologies",
                str(ONTOLOGIES),
            ]
        )
        == 4
    )
    err = capsys.readouterr().err
    assert err == f"oncofhir: error: {missing}: cannot read export: No such file or directory\n"


def test_quality_gate_sends_records_to_the_rejects(tmp_path: Path, compiled) -> None:
    from oncofhir.qc import stage_qc

    export = tmp_path / "export.csv"
    export.write_text(generate(compiled["uc1"], "hospital_a", 30, seed=4), encoding="utf-8")
    compiled_json = tmp_path / "dict.json"
    stage_compile(DICTIONARIES / "uc1", ONTOLOGIES, compiled_json)
    ing = tmp_path / "ingest"
    stage_ingest(compiled_json, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
    qc = stage_qc(compiled_json, ing / "records.csv", tmp_path / "qc", min_record_score=90, center="hospital_a")
    gate = [line.split("\t") for line in (tmp_path / "qc" / "gate.tsv").read_text().splitlines()[1:]]
    failing = {int(row): (rid, score, why) for row, rid, score, passed, why in gate if passed == "no"}
    assert len(failing) == qc["excluded"] > 0
    summary = stage_fhir(
        compiled_json,
        ing / "records.csv",
        ing / "rejects.tsv",
        ing / "report.json",
        tmp_path / "fhir" / "c",
        tmp_path / "fhir" / "c.ndjson",
        tmp_path / "fhir" / "c.index.tsv",
        tmp_path / "rejects.tsv",
        tmp_path / "fhir" / "c.summary.json",
        gate_tsv=tmp_path / "qc" / "gate.tsv",
    )
    assert summary["rows_in"] == 32 == summary["bundles"] + summary["rejected"]
    assert summary["rejected"] == 3 + len(failing)
    rejects = [line.split("\t") for line in (tmp_path / "rejects.tsv").read_text().splitlines()[1:]]
    by_row = {int(r[0]): r for r in rejects if r[2] == "qc"}
    assert set(by_row) == set(failing)
    for row, (rid, score, why) in failing.items():
        assert by_row[row][1] == rid
        assert by_row[row][3] == f"quality gate: record score {score}; {why}"


def test_pseudonymised_bundles_never_carry_the_record_id(tmp_path: Path, compiled) -> None:
    """With a pseudonymizer the hospital's id appears only in the local index: not in a bundle, id or file name."""
    from oncofhir.deposit.pseudonym import PSEUDONYM_SYSTEM, Pseudonymizer
    from oncofhir.fhir.builder import resource_uuid

    export = tmp_path / "export.csv"
    export.write_text(generate(compiled["uc3"], "hospital_a", 20, seed=5), encoding="utf-8")
    pseudo = Pseudonymizer(b"0123456789abcdef0123456789abcdef")
    summary = run(tmp_path, "uc3", export, pseudonymizer=pseudo)
    assert summary["pseudonymised"] is True and (summary["bundles"], summary["rejected"]) == (19, 3)
    index = [line.split("\t") for line in (tmp_path / "fhir" / "center.index.tsv").read_text().splitlines()]
    assert index[0] == ["record_id", "patient_key", "file", "bundle_id", "resources"]
    ndjson = (tmp_path / "fhir" / "center.ndjson").read_text()
    for record_id, key, name, bundle_id, _ in index[1:]:
        assert key == pseudo.pseudonym("uc3", record_id) and name == f"{key}.json"
        assert bundle_id == resource_uuid("uc3", key)
        text = (tmp_path / "fhir" / "center" / name).read_text()
        assert record_id not in text and record_id not in ndjson
        bundle = json.loads(text)
        patient = bundle["entry"][0]["resource"]
        assert patient["identifier"] == [{"system": PSEUDONYM_SYSTEM, "value": key}]
        assert patient["id"] == resource_uuid("uc3", key, "patient")
    assert sorted(p.name for p in (tmp_path / "fhir" / "center").iterdir()) == sorted(r[2] for r in index[1:])


def test_cli_log_keeps_the_error_readable_on_the_terminal(tmp_path: Path, compiled, capsys) -> None:
    """How the workflow's per-center rules run a stage: everything in --log, a user error also on the terminal."""
    dictionary = tmp_path / "uc1.json"
    stage_compile(DICTIONARIES / "uc1", ONTOLOGIES, dictionary)
    bad = tmp_path / "bad.csv"
    bad.write_text("sex,age\n1,2\n", encoding="utf-8")
    log = tmp_path / "ingest.log"
    out = [str(tmp_path / name) for name in ("r.csv", "rj.tsv", "rep.json")]
    args = ["--log", str(log), "ingest", "--dictionary", str(dictionary), "--export", str(bad)]
    code = main([*args, "--records", out[0], "--rejects", out[1], "--report", out[2]])
    message = f"{bad}: record id column 'record_id' is missing (the header names sex)"  # 'age' is not a column
    assert code == 4
    assert capsys.readouterr().err == f"oncofhir: error: {message}\n(log: {log})\n"
    assert log.read_text() == f"oncofhir: error: {message}\n"
    assert not any(Path(p).exists() for p in out)


def _gated_center(tmp_path: Path, use_case: str, export_text: str) -> tuple[Path, Path, Path]:
    """Compile, ingest and QC one export with a gate at the median score: (compiled, ingest folder, gate.tsv)."""
    from oncofhir.qc import stage_qc

    export = tmp_path / "export.csv"
    export.write_text(export_text, encoding="utf-8")
    compiled_json = tmp_path / "dict.json"
    stage_compile(DICTIONARIES / use_case, ONTOLOGIES, compiled_json)
    ing = tmp_path / "ingest"
    stage_ingest(compiled_json, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
    stage_qc(compiled_json, ing / "records.csv", tmp_path / "qc0", center="c")
    scores = sorted(float(line.split("\t")[2]) for line in (tmp_path / "qc0" / "gate.tsv").read_text().splitlines()[1:])
    stage_qc(compiled_json, ing / "records.csv", tmp_path / "qc", min_record_score=scores[len(scores) // 2], center="c")
    return compiled_json, ing, tmp_path / "qc" / "gate.tsv"


@pytest.mark.parametrize("use_case", ["uc7", "uc68"])
def test_fhir_stage_writes_the_same_bytes_for_any_chunk_size(tmp_path: Path, compiled, use_case: str) -> None:
    """Issue 11.9: the FHIR stage reads its records in chunks and streams every output. Ingest rejects (a
    duplicated and a blank id), QC gate exclusions, branching logic and ``when:`` come out the same, byte for byte,
    in chunks of 1 or 7 records as in one chunk."""
    compiled_json, ing, gate = _gated_center(tmp_path, use_case, generate(compiled[use_case], "h", 60, seed=11))
    digests = {}
    for chunk_rows in (None, 1, 7):
        out = tmp_path / f"out-{chunk_rows}"
        summary = stage_fhir(
            compiled_json,
            ing / "records.csv",
            ing / "rejects.tsv",
            ing / "report.json",
            out / "c",
            out / "c.ndjson",
            out / "c.index.tsv",
            out / "rejects.tsv",
            out / "c.summary.json",
            gate_tsv=gate,
            chunk_rows=chunk_rows,
        )
        digests[chunk_rows] = digest_tree(out)
    assert digests[1] == digests[7] == digests[None]
    assert len(digests[None]) == 4 + summary["bundles"]
    rejects = [line.split("\t") for line in (out / "rejects.tsv").read_text().splitlines()[1:]]
    rows = [int(r[0]) for r in rejects]
    assert rows == sorted(rows) and summary["rejected"] == len(rejects)
    stages = [r[2] for r in rejects]
    assert stages.count("ingest") == 3 and stages.count("qc") > 0
    assert summary["bundles"] > 0 and summary["rows_in"] == 62 == summary["bundles"] + summary["rejected"]


def test_fhir_stage_refuses_records_out_of_row_order(tmp_path: Path, compiled) -> None:
    """The stage merges the gate and the rejects with the records in one pass: a table whose rows are not in
    increasing order (ingest never writes one) fails with its line instead of a wrong merge."""
    compiled_json, ing, gate = _gated_center(tmp_path, "uc1", generate(compiled["uc1"], "h", 5, seed=2))
    records = ing / "records.csv"
    lines = records.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    records.write_text("".join(lines), encoding="utf-8")
    later, earlier = int(lines[2].split(",")[0]), int(lines[3].split(",")[0])
    with pytest.raises(InputDataError) as caught:
        stage_fhir(
            compiled_json,
            records,
            ing / "rejects.tsv",
            ing / "report.json",
            None,
            tmp_path / "c.ndjson",
            tmp_path / "c.index.tsv",
            tmp_path / "rejects.tsv",
            tmp_path / "c.summary.json",
            gate_tsv=gate,
        )
    assert str(caught.value) == (
        f"{records}: line 4: row {earlier} after row {later}: not a records table written by ingest"
    )
    assert not any((tmp_path / name).exists() for name in ("c.ndjson", "c.index.tsv", "rejects.tsv"))


def test_validate_stage_streams_its_issues_as_one_list(tmp_path: Path, compiled) -> None:
    """The validate stage writes each issue as it is found (a warning per bundle is millions of issues for a
    large center): ``issues.json`` is still exactly ``orjson``'s two-space dump of the whole list and
    ``issues.tsv`` one line per issue, with or without issues."""
    import orjson

    from oncofhir.tsv import to_bytes
    from oncofhir.validate.report import COLUMNS, stage_validate

    HEADER = "source\tbundle\tlayer\trule\tseverity\tcode\tlocation\tmessage"

    export = tmp_path / "export.csv"
    export.write_text(generate(compiled["uc7"], "hospital_a", 30, seed=3), encoding="utf-8")
    bundles = run(tmp_path, "uc7", export)["bundles"]
    ndjson = tmp_path / "fhir" / "center.ndjson"
    with ndjson.open("ab") as handle:
        handle.write(b'{"not json\n')
    index = tmp_path / "fhir" / "center.index.tsv"
    summary = stage_validate(tmp_path / "dict.json", ndjson, tmp_path / "v", fail_on_error=False, index=index)
    data = (tmp_path / "v" / "issues.json").read_bytes()
    rows = orjson.loads(data)
    assert data == orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n"
    assert len(rows) == summary["issues"] > summary["errors"] == 1
    assert rows[-1]["source"] == f"center.ndjson:{bundles + 1}" and rows[-1]["severity"] == "fatal"
    assert rows[0]["record_id"] == rows[0]["pseudonym"] != ""  # named from the index (the key: not pseudonymised)
    tsv = (tmp_path / "v" / "issues.tsv").read_bytes()
    assert tsv == to_bytes(COLUMNS, [[r[c] for c in COLUMNS] for r in rows])  # the whole-list writer's bytes
    lines = tsv.decode().splitlines()
    assert lines[0] == f"record_id\tpseudonym\t{HEADER}"
    assert [line.split("\t")[2] for line in lines[1:]] == [r["source"] for r in rows]
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    stage_validate(tmp_path / "dict.json", empty, tmp_path / "e", fail_on_error=False)
    assert (tmp_path / "e" / "issues.json").read_bytes() == b"[]\n"
    assert (tmp_path / "e" / "issues.tsv").read_text() == f"record_id\tpseudonym\t{HEADER}\n"
