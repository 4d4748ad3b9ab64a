"""The data model as a FHIR Implementation Guide (issue #14): FSH generated from the dictionaries, SUSHI, claims."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import ONTOLOGIES, workflow_env

from oncofhir.dictionary import compile_dictionary
from oncofhir.errors import ConfigError
from oncofhir.fhir.builder import BundleBuilder, resource_uuid
from oncofhir.ig.fsh import FRAGMENT_ANYWAY, NATIVE_SYSTEMS, _concepts
from oncofhir.ig.generate import generate, known_code_systems, required_slots
from oncofhir.ig.install import CORE_PACKAGE, INSTALLER, SUSHI_VERSION, ensure_sushi, installed_sushi, npm_available
from oncofhir.ig.names import DEFAULT_CANONICAL, bundle_profile_url, profile_url
from oncofhir.ig.sushi import compile_fsh, find_sushi, pack
from oncofhir.validate.profile import Profile

ROOT = Path(__file__).resolve().parents[1]
DICTIONARIES = ROOT / "resources" / "dictionaries"
USE_CASES = sorted(p.name for p in DICTIONARIES.iterdir() if (p / "mapping.yaml").exists())
SYSTEM = "urn:oncofhir:pseudonym"


@pytest.fixture(scope="module")
def compiled():
    return {uc: compile_dictionary(DICTIONARIES / uc, ONTOLOGIES) for uc in USE_CASES}


@pytest.fixture(scope="module")
def ig(compiled, tmp_path_factory):
    out = tmp_path_factory.mktemp("ig")
    return out, generate(list(compiled.values()), out, DEFAULT_CANONICAL, SYSTEM)


def block(text: str, head: str) -> list[str]:
    """The lines of one FSH definition, from its ``head`` line to the blank line ending it."""
    lines = text.splitlines()
    start = lines.index(head)
    end = lines.index("", start)
    return lines[start:end]


def test_a_slot_profile_reads_like_a_hand_written_one(ig) -> None:
    out, _ = ig
    text = (out / "input" / "fsh" / "uc1-profiles.fsh").read_text()
    assert block(text, "Profile: Uc1_hep_b") == [
        "Profile: Uc1_hep_b",
        "Parent: Observation",
        "Id: uc1.hep-b",
        'Title: "UC1 hep_b: Hepatitis B status HbsAg"',
        'Description: "REDCap variable hep_b (Hepatitis B status HbsAg), mandatory."',
        "* subject 1..1",
        "* subject only Reference(Uc1_patient)",
        "* status = #final",
        "* value[x] only CodeableConcept",
        "* valueCodeableConcept.coding 1..*",
        "* valueCodeableConcept.coding from Uc1_hep_b_Value (required)",
        "* obeys oncofhir-value",
        "* category 1..1",
        '* category = $observation-category#laboratory "Laboratory"',
        '* code = $sct#365863005 "Finding of hepatitis B status (finding)"',
    ]
    terminology = (out / "input" / "fsh" / "uc1-terminology.fsh").read_text()
    assert block(terminology, "ValueSet: Uc1_hep_b_Value") == [
        "ValueSet: Uc1_hep_b_Value",
        "Id: uc1.hep-b.value",
        'Title: "UC1 hep_b value"',
        'Description: "The concepts REDCap variable hep_b (Hepatitis B status HbsAg) maps to in the value of slot '
        'hep_b."',
        '* $sct#10828004 "Positive (qualifier value)"',
        '* $sct#260385009 "Negative (qualifier value)"',
        '* $sct#261665006 "Unknown (qualifier value)"',
    ]
    condition = block(text, "Profile: Uc1_condition")
    assert "* onset[x] only Age" in condition
    assert '* onsetAge.system = "http://unitsofmeasure.org"' in condition
    assert "* onsetAge.code = #a" in condition


def test_every_slot_has_a_profile_and_its_value_sets_hold_exactly_its_concepts(compiled, ig) -> None:
    out, result = ig
    for uc, dd in compiled.items():
        text = (out / "input" / "fsh" / f"{uc}-profiles.fsh").read_text()
        uc_title = uc[:1].upper() + uc[1:]
        for res in dd.resources:
            assert f"Profile: {uc_title}_{res['id']}" in text.splitlines(), (uc, res["id"])
            value = res["elements"].get("value")
            if isinstance(value, dict) and value["kind"] == "coded" and list(_concepts(value)):
                vs = result[uc].valuesets[f"{uc_title}_{res['id']}_Value"]
                expected = {
                    (e["coding"]["system"], e["coding"]["code"]) for e in value["map"].values() if e and e.get("coding")
                }
                assert {(s, c) for s, c, _ in vs.concepts} == expected, (uc, res["id"])
        bundle = block(text, f"Profile: {uc_title}Bundle")
        required = required_slots(dd)
        for res in dd.resources:
            card = "1..1" if res["id"] in required else "0..1"
            assert any(line.strip().startswith(f"{res['id']} {card}") for line in bundle), (uc, res["id"])
        assert "* type = #collection" in bundle
        assert any(line.strip() == "patient 1..1 and" for line in bundle)


def test_concept_map_publishes_each_redcap_answer(ig) -> None:
    out, _ = ig
    text = (out / "input" / "fsh" / "uc1-terminology.fsh").read_text()
    lines = text.splitlines()
    k = lines.index("* group[=].element[+].code = #hep_b.0")
    assert lines[k : k + 4] == [
        "* group[=].element[+].code = #hep_b.0",
        '* group[=].element[=].display = "Hepatitis B status HbsAg: positive"',
        "* group[=].element[=].target[+].code = #10828004",
        '* group[=].element[=].target[=].display = "Positive (qualifier value)"',
    ]
    assert '* #hep_b.0 "positive"' in lines


def test_a_new_use_case_gets_its_ig_without_code_change(tmp_path) -> None:
    src = tmp_path / "dictionaries" / "uc99"
    shutil.copytree(DICTIONARIES / "uc1", src)
    mapping = src / "mapping.yaml"
    mapping.write_text(mapping.read_text().replace("use_case: uc1", "use_case: uc99"))
    dd = compile_dictionary(src, ONTOLOGIES)
    generate([dd], tmp_path / "ig", DEFAULT_CANONICAL, SYSTEM)
    files = sorted(p.name for p in (tmp_path / "ig" / "input" / "fsh").iterdir())
    assert files == [
        "fragments.fsh",
        "invariants.fsh",
        "uc99-aliases.fsh",
        "uc99-profiles.fsh",
        "uc99-terminology.fsh",
    ]
    assert sorted(p.name for p in (tmp_path / "ig").glob("uc99.*")) == ["uc99.html", "uc99.md"]
    text = (tmp_path / "ig" / "input" / "fsh" / "uc99-profiles.fsh").read_text()
    assert "Profile: Uc99_hep_b" in text and "Id: uc99.hep-b" in text and "Profile: Uc99Bundle" in text


def test_the_fragments_do_not_depend_on_the_machines_package_cache(compiled, tmp_path, monkeypatch) -> None:
    """Which code systems get a fragment is read from the shipped list, not from ~/.fhir/packages: an empty cache
    and the real one give the same FSH, with fragments for exactly the systems neither core nor THO defines."""
    dicts = list(compiled.values())
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("FHIR_PACKAGE_CACHE", str(tmp_path / "empty-cache"))
    generate(dicts, tmp_path / "a", DEFAULT_CANONICAL, SYSTEM)
    monkeypatch.undo()
    generate(dicts, tmp_path / "b", DEFAULT_CANONICAL, SYSTEM)
    fragments = (tmp_path / "a" / "input" / "fsh" / "fragments.fsh").read_text(encoding="utf-8")
    assert fragments == (tmp_path / "b" / "input" / "fsh" / "fragments.fsh").read_text(encoding="utf-8")
    urls = set(re.findall(r'^\* \^url = "([^"]+)"', fragments, re.MULTILINE))
    used = {spec["uri"] for dd in dicts for spec in dd.systems.values()}
    # every external system the dictionaries use gets one, but those the validator's packages define (the HL7
    # systems of core and THO, whether or not THO is cached here) and UCUM; LOINC and SNOMED CT always do
    assert urls == (used - (known_code_systems() - FRAGMENT_ANYWAY) - NATIVE_SYSTEMS) and urls >= FRAGMENT_ANYWAY
    assert "http://terminology.hl7.org/CodeSystem/v2-0074" in known_code_systems()  # THO 7.0.1, not core


def test_bundles_claim_their_generated_profiles(compiled) -> None:
    dd = compiled["uc1"]
    builder = BundleBuilder(dd, SYSTEM, canonical=DEFAULT_CANONICAL)
    columns = list(dd.fields)
    rec = dict.fromkeys(columns, "") | {"record_id": "R1", "sex": "1", "hep_b": "0"}
    (built,) = list(builder.build([rec], {c: [rec[c]] for c in columns}, [2]))
    bundle = built.bundle
    assert bundle["meta"] == {
        "source": "urn:oncofhir:dictionary:uc1:1.0.0",
        "profile": ["https://oncofhir.example.org/fhir/StructureDefinition/uc1"],
    }
    by_id = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    for res in dd.resources:
        resource = by_id.get(resource_uuid("uc1", "R1", res["id"]))
        if resource is not None:
            assert resource["meta"] == {"profile": [profile_url(DEFAULT_CANONICAL, "uc1", res["id"])]}
    assert by_id[resource_uuid("uc1", "R1", "hep_b")]["meta"]["profile"] == [
        "https://oncofhir.example.org/fhir/StructureDefinition/uc1.hep-b"
    ]
    assert bundle_profile_url(DEFAULT_CANONICAL, "uc1") == bundle["meta"]["profile"][0]
    # the in-process profile layer accepts the claims, and names a wrong one at its element
    profile = Profile(dd)
    assert profile.check(bundle, [None] * len(bundle["entry"])) == []
    wrong = copy.deepcopy(bundle)
    i = next(k for k, e in enumerate(wrong["entry"]) if e["resource"]["id"] == resource_uuid("uc1", "R1", "hep_b"))
    wrong["entry"][i]["resource"]["meta"] = {"profile": [profile_url(DEFAULT_CANONICAL, "uc1", "hep_c")]}
    (issue,) = profile.check(wrong, [None] * len(wrong["entry"]))
    assert (issue.location, issue.rule, issue.message) == (
        f"Bundle.entry[{i}].resource.meta.profile[0]",
        "model-profile",
        "slot 'hep_b' claims profile 'https://oncofhir.example.org/fhir/StructureDefinition/uc1.hep-c'; "
        "its profile is <canonical>/StructureDefinition/uc1.hep-b",
    )


def test_the_streaming_fhir_stage_claims_profiles_in_every_chunk(tmp_path) -> None:
    """fhir.claim_profiles goes through the FHIR stage's chunked builder: every resource of every bundle claims its
    slot's profile and every Bundle the use case's, in chunks of 3 records as in one."""
    from oncofhir.demo import generate as demo_export
    from oncofhir.dictionary import load_compiled
    from oncofhir.pipeline import stage_compile, stage_fhir, stage_ingest

    compiled_json = tmp_path / "uc7.json"
    stage_compile(DICTIONARIES / "uc7", ONTOLOGIES, compiled_json)
    dd = load_compiled(compiled_json)
    export = tmp_path / "export.csv"
    export.write_text(demo_export(dd, "h", 10, seed=3), encoding="utf-8")
    ing = tmp_path / "ingest"
    stage_ingest(compiled_json, export, ing / "records.csv", ing / "rejects.tsv", ing / "report.json")
    texts = {}
    for chunk_rows in (None, 3):
        out = tmp_path / f"out-{chunk_rows}"
        summary = stage_fhir(
            compiled_json,
            ing / "records.csv",
            ing / "rejects.tsv",
            ing / "report.json",
            None,
            out / "c.ndjson",
            out / "c.index.tsv",
            out / "rejects.tsv",
            out / "c.summary.json",
            claim_profiles=DEFAULT_CANONICAL,
            chunk_rows=chunk_rows,
        )
        texts[chunk_rows] = (out / "c.ndjson").read_text(encoding="utf-8")
    assert texts[3] == texts[None]
    bundles = [json.loads(line) for line in texts[3].splitlines()]
    assert len(bundles) == summary["bundles"] == 9  # the demo export holds one defective row (a reject)
    slot_profiles = {profile_url(DEFAULT_CANONICAL, "uc7", res["id"]) for res in dd.resources}
    for bundle in bundles:
        assert bundle["meta"]["profile"] == [bundle_profile_url(DEFAULT_CANONICAL, "uc7")]
        for entry in bundle["entry"]:
            (claimed,) = entry["resource"]["meta"]["profile"]
            assert claimed in slot_profiles


def test_without_a_canonical_nothing_is_claimed(compiled) -> None:
    dd = compiled["uc1"]
    builder = BundleBuilder(dd, SYSTEM)
    columns = list(dd.fields)
    rec = dict.fromkeys(columns, "") | {"record_id": "R1"}
    (built,) = list(builder.build([rec], {c: [rec[c]] for c in columns}, [2]))
    assert built.bundle["meta"] == {"source": "urn:oncofhir:dictionary:uc1:1.0.0"}
    assert all("meta" not in e["resource"] for e in built.bundle["entry"])


def test_missing_sushi_is_one_line_saying_how_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        find_sushi(tmp_path / "nowhere")
    assert str(err.value) == (
        f"SUSHI (fsh-sushi 3.21.0) is not installed in {tmp_path / 'nowhere'} nor on PATH: install it with: "
        "bash tools/sushi/install.sh (needs npm), or set ig.enabled: false"
    )


def _sushi():
    try:
        return find_sushi()
    except ConfigError as exc:
        pytest.skip(f"SUSHI not installed: {exc}")


def test_sushi_compiles_every_use_case_with_no_errors(ig, tmp_path) -> None:
    sushi = _sushi()
    out, _ = ig
    info = compile_fsh(out, sushi, tmp_path / "sushi.log")
    assert (info["sushi"], info["errors"], info["warnings"] - info["expected_warnings"]) == ("3.21.0", 0, 0)
    n = pack(out, tmp_path / "package.tgz")
    with tarfile.open(tmp_path / "package.tgz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("package/package.json"))
        index = json.load(tar.extractfile("package/.index.json"))
        sd = json.load(tar.extractfile("package/StructureDefinition-uc1.hep-b.json"))
    assert len(index["files"]) == n == len(names) - 2
    assert (manifest["name"], manifest["version"], manifest["fhirVersions"]) == (
        "oncofhir.eucanimage",
        "1.0.0",
        ["4.3.0"],
    )
    assert sd["url"] == "https://oncofhir.example.org/fhir/StructureDefinition/uc1.hep-b"
    binding = next(e for e in sd["differential"]["element"] if e["id"] == "Observation.value[x].coding")
    assert binding["binding"] == {
        "strength": "required",
        "valueSet": "https://oncofhir.example.org/fhir/ValueSet/uc1.hep-b.value",
    }


def test_an_unchanged_model_packs_to_the_same_bytes(tmp_path) -> None:
    """No time stamp in package.tgz (tar entries nor gzip header): a rebuild of the same model is the same file, so
    a run killed and rerun equals an uninterrupted one (tools/crash_test.py compares every output)."""
    import time

    (tmp_path / "fsh-generated" / "resources").mkdir(parents=True)
    (tmp_path / "package.json").write_text('{"name": "oncofhir.eucanimage"}')
    (tmp_path / "fsh-generated" / "resources" / "ValueSet-uc1.x.json").write_text('{"resourceType": "ValueSet"}')
    assert pack(tmp_path, tmp_path / "a.tgz") == 1
    time.sleep(1.1)  # gzip stores whole seconds
    pack(tmp_path, tmp_path / "b.tgz")
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


def _md_rows(path: Path) -> list[list[str]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_data_model_page_matches_the_dictionary_row_by_row(compiled, ig) -> None:
    out, _ = ig
    for uc, dd in compiled.items():
        table = _md_rows(out / f"{uc}.md")
        assert [r[0] for r in table] == [f"`{name}`" for name in dd.fields], uc  # one row per variable, in order
        for row, (name, f) in zip(table, dd.fields.items(), strict=True):
            level = "recommended"
            for key in ("minimal", "mandatory"):
                value = getattr(f, key)
                if value is True or (isinstance(value, str) and value):
                    level = key if value is True else f"{key} if {value}"
                    break
            expected_type = f.type + (f" ({f.validation})" if f.validation else "")
            assert row[1:4] == [" ".join(f.label.split()).replace("|", "\\|"), expected_type, level.replace("|", "\\|")]
            # every slot element the variable feeds is listed, with each answer -> concept of its map
            for res in dd.resources:
                for src in res["elements"].values():
                    if isinstance(src, dict) and src.get("variable") == name:
                        assert f"(`{res['id']}`)" in row[4], (uc, name, res["id"])
                        for answer, entry in (src.get("map") or {}).items():
                            if isinstance(entry, dict) and entry.get("coding"):
                                c = entry["coding"]
                                concept = f"{c['system']}\\|{c['code']} {c['display']}"
                                label = f.choices.get(answer, "")
                                assert f"{answer} {label} → {concept}" in row[6], (uc, name, answer)
    html = (out / "uc1.html").read_text()
    assert html.count('<tr id="') == len(compiled["uc1"].fields)
    assert (
        '<tr id="hep_b"><td><code>hep_b</code></td><td>Hepatitis B status HbsAg</td><td>radio</td>'
        "<td>mandatory</td>" in html
    )


def test_run_report_links_the_data_model_pages(tmp_path) -> None:
    from oncofhir.ig.report_section import data_model_section
    from oncofhir.report import write_run_summary

    section = data_model_section(tmp_path / "ig", tmp_path / "report", ["uc1", "uc7"])
    assert str(section) == (
        '<h2 id="data-model">Data model</h2>\n'
        '<p class="note">Per use case, generated from its dictionary with the FHIR Implementation Guide the bundles '
        "claim\n(docs/ig.md): "
        '<a href="../ig/uc1.html">uc1</a>, <a href="../ig/uc7.html">uc7</a>;\n'
        'FHIR package <a href="../ig/package.tgz">package.tgz</a>.</p>\n'
    )
    html = tmp_path / "report" / "index.html"
    write_run_summary([], tmp_path / "report" / "run_summary.tsv", html, [section])
    assert str(section) in html.read_text(encoding="utf-8")


def test_run_report_says_why_the_run_built_no_ig(tmp_path) -> None:
    """ig.enabled false, or auto without SUSHI and npm (rule run_summary's ig_line): the reason, in place of links."""
    from oncofhir.ig.report_section import skipped_section
    from oncofhir.report import write_run_summary

    line = "IG off (ig.enabled: false): no results/ig/package.tgz, bundles claim no profile"
    section = skipped_section(line)
    assert str(section) == f'<h2 id="data-model">Data model</h2>\n<p class="note">{line}</p>\n'
    html = tmp_path / "report" / "index.html"
    write_run_summary([], tmp_path / "report" / "run_summary.tsv", html, [section])
    assert str(section) in html.read_text(encoding="utf-8")


def test_the_one_file_report_embeds_the_data_model_pages(compiled, tmp_path) -> None:
    """Rule report_file (get_report_pages adds the pages when ig.enabled): the run report's links become anchors
    to the embedded pages; the package, not embedded, is left as its name."""
    from oncofhir.ig.pages import write_pages
    from oncofhir.ig.report_section import data_model_section
    from oncofhir.report import write_run_summary
    from oncofhir.report_file import write_report_file

    results = tmp_path / "results"
    (results / "ig").mkdir(parents=True)
    pages = [write_pages(compiled[uc], results / "ig")[1] for uc in ("uc1", "uc7")]
    index = results / "report" / "index.html"
    section = data_model_section(results / "ig", index.parent, ["uc1", "uc7"])
    write_run_summary([], results / "report" / "run_summary.tsv", index, [section])
    line = write_report_file([index, *pages], [], results, results / "report" / "report.html")
    text = (results / "report" / "report.html").read_text(encoding="utf-8")
    assert '<a href="#ig-uc1-html">uc1</a>, <a href="#ig-uc7-html">uc7</a>;' in text
    assert "FHIR package <a>package.tgz</a>.</p>" in text
    assert '<section id="ig-uc1-html">' in text and '<section id="ig-uc7-html">' in text
    # left as text: the package (run report and both pages), the QC index and run_summary.tsv (not passed here)
    out = results / "report" / "report.html"
    assert line == f"3 page(s), 0 list(s) and 0 file name(s) in {out}, 5 link(s) left as text"


def _without_sushi_or_npm(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine with neither SUSHI nor npm: PATH holds only a shell, HOME is empty."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    env = workflow_env(PATH=str(bin_dir), HOME=str(tmp_path / "home"))
    env.pop("FHIR_PACKAGE_CACHE", None)
    return env


def _centers() -> int:
    """The demo's centers (config/centers.tsv)."""
    return len([line for line in (ROOT / "config" / "centers.tsv").read_text().splitlines()[1:] if line.strip()])


def _dry_run(tmp_path: Path, env: dict[str, str], *config: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(sys.executable, "-m", "snakemake", "-n", "-p", "--nolock", "--cores", "1"), "--config", *config],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_auto_skips_the_ig_in_one_line_without_sushi_or_npm(tmp_path) -> None:
    """ig.enabled auto (the default) on a machine with neither: no IG job, bundles claim no profile, one line."""
    done = _dry_run(tmp_path, _without_sushi_or_npm(tmp_path), f"results={tmp_path}/results")
    assert done.returncode == 0, done.stderr[-3000:]
    home = tmp_path / "home" / ".cache" / "oncofhir" / "sushi"
    line = (
        f"oncofhir: IG skipped (ig.enabled: auto): neither SUSHI (fsh-sushi 3.21.0 in {home}) nor npm to install it "
        "is available, so no results/ig/package.tgz and bundles claim no profile; install Node.js/npm to build it"
    )
    output = done.stdout + done.stderr
    assert output.count(line) == 1, output[-3000:]
    assert "implementation_guide" not in output
    assert output.count("oncofhir --log") > 0 and "--claim-profiles" not in output


def test_ig_required_without_sushi_or_npm_stops_before_any_job(tmp_path) -> None:
    """ig.enabled true, given on the command line (Snakemake leaves the nested 'true' a string: read as boolean)."""
    done = _dry_run(tmp_path, _without_sushi_or_npm(tmp_path), f"results={tmp_path}/results", "ig={enabled: true}")
    home = tmp_path / "home" / ".cache" / "oncofhir" / "sushi"
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"oncofhir: configuration error: ig.enabled is true but SUSHI (fsh-sushi 3.21.0) is not installed in {home} "
        "and npm is not on PATH to install it: install Node.js/npm (e.g. apt-get install npm) and rerun, or set "
        "ig.enabled: auto (skips the IG on such a machine) or false"
    )
    assert not (tmp_path / "results").exists()


def test_without_the_ig_the_hl7_validator_gets_bundles_claiming_no_profile(tmp_path) -> None:
    """ig.enabled false with the HL7 validator stage on (both from --config, as strings): allowed, since bundles
    claim a profile only when the run builds the package that defines it."""
    done = _dry_run(
        tmp_path,
        workflow_env(),
        f"results={tmp_path}/results",
        "ig={enabled: false}",
        f"validation={{hl7_validator: {{enabled: true, home: {tmp_path}}}}}",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "oncofhir: IG off (ig.enabled: false): no results/ig/package.tgz, bundles claim no profile" in output
    assert re.search(rf"^hl7_validator +{_centers()}$", output, re.MULTILINE), output[-3000:]
    assert "implementation_guide" not in output
    assert "--claim-profiles" not in output


def test_with_sushi_or_npm_auto_builds_the_ig_and_bundles_claim_it(tmp_path) -> None:
    """ig.enabled auto where SUSHI is installed or npm can install it (CI: both): the IG job, claims in the bundles."""
    if installed_sushi() is None and not npm_available():
        pytest.skip("neither SUSHI nor npm on this machine")
    done = _dry_run(tmp_path, workflow_env(), f"results={tmp_path}/results")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert re.search(r"^implementation_guide +1$", output, re.MULTILINE) and "--install-sushi" in output
    assert output.count("--claim-profiles https://oncofhir.example.org/fhir") == _centers()


def test_ensure_sushi_without_npm_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("FHIR_PACKAGE_CACHE", str(tmp_path / "packages"))
    with pytest.raises(ConfigError) as err:
        ensure_sushi(tmp_path / "sushi")
    assert str(err.value) == (
        f"SUSHI (fsh-sushi 3.21.0) is not installed in {tmp_path / 'sushi'} and npm is not on PATH to install it: "
        "install Node.js/npm (e.g. apt-get install npm), or set ig.enabled: false"
    )


def test_ensure_sushi_uses_an_installed_sushi_without_the_network(tmp_path, monkeypatch) -> None:
    """Installed (CI: tools/sushi/install.sh): found as it is, no installer run, no lock file made."""
    sushi = installed_sushi()
    if sushi is None:
        pytest.skip("SUSHI not installed")
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm: nothing could be installed
    assert ensure_sushi() == sushi


# npm as the installer calls it: `install --prefix HOME fsh-sushi@V` (a sushi that reports V, slowly, so that a second
# install would overlap) and `pack hl7.fhir.r4b.core@4.3.0` (its tarball); each call is logged. The installer and
# the lock are the real ones.
FAKE_NPM = r"""#!/usr/bin/env bash
set -eu
case "$1" in
  install)
    echo "install start" >>"$NPM_LOG"; sleep 2
    prefix=$(printf '%s\n' "$@" | sed -n '/--prefix/{n;p}')
    mkdir -p "$prefix/node_modules/.bin"
    printf '#!/bin/sh\necho "SUSHI v3.21.0 (implements FHIR Shorthand v3.0.0)"\n' >"$prefix/node_modules/.bin/sushi"
    chmod +x "$prefix/node_modules/.bin/sushi"
    echo "install end" >>"$NPM_LOG" ;;
  pack)
    mkdir -p package && echo '{"name": "hl7.fhir.r4b.core", "version": "4.3.0"}' >package/package.json
    tar -czf hl7.fhir.r4b.core-4.3.0.tgz package && rm -r package
    echo "pack" >>"$NPM_LOG" ;;
esac
"""


def test_concurrent_first_uses_install_sushi_once(tmp_path) -> None:
    """Two jobs needing SUSHI at once on a fresh machine: one installs under the lock, the other waits and uses it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    log = tmp_path / "npm.log"
    env = workflow_env(PATH=f"{bin_dir}:{os.environ['PATH']}", NPM_LOG=str(log))
    env |= {"ONCOFHIR_SUSHI_HOME": str(tmp_path / "sushi"), "FHIR_PACKAGE_CACHE": str(tmp_path / "packages")}
    code = "from oncofhir.ig.install import ensure_sushi; print(ensure_sushi())"
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    done = [(job.communicate(timeout=120), job.returncode) for job in jobs]
    sushi = tmp_path / "sushi" / "node_modules" / ".bin" / "sushi"
    assert [(out.strip(), code) for (out, _), code in done] == [(str(sushi), 0)] * 2, done
    assert log.read_text().splitlines() == ["install start", "install end", "pack"]
    installs = [err for (_, err), _ in done if "installing SUSHI" in err]
    assert len(installs) == 1 and "sushi: ready (SUSHI v3.21.0" in installs[0], done
    assert (tmp_path / "packages" / "hl7.fhir.r4b.core#4.3.0" / "package" / "package.json").is_file()


def test_the_installer_pins_the_versions_python_reads() -> None:
    """One source of truth: tools/sushi/install.sh runs the packaged installer, whose pins oncofhir reads."""
    wrapper = (ROOT / "tools" / "sushi" / "install.sh").read_text()
    assert 'exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../src/oncofhir/ig/install_sushi.sh"' in wrapper
    assert INSTALLER == ROOT / "src" / "oncofhir" / "ig" / "install_sushi.sh"
    assert (SUSHI_VERSION, CORE_PACKAGE) == ("3.21.0", "hl7.fhir.r4b.core#4.3.0")


def test_the_ig_depends_on_dictionaries_and_ontologies_only() -> None:
    """Everything the package is built from, forced: only the dictionaries are compiled, no export is read (a
    changed export never reruns SUSHI)."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "-n", "--nolock", "--forceall"),
            *("--configfile", "config/ig.yaml", "--", "results/ig/package.tgz"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ONCOFHIR_PSEUDONYM_KEY": "oncofhir-demo-secret-NOT-for-real-data"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stats = done.stdout.split("Job stats:")[1].split("Reasons:")[0]
    jobs = {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:] if len(line.split()) == 2}
    assert jobs == {"compile_dictionary": len(USE_CASES), "implementation_guide": 1, "total": len(USE_CASES) + 1}
