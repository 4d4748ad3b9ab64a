"""The ``oncofhir`` command line: exit codes, one-line errors, defaults that work from any folder, help texts."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from helpers import DICTIONARIES, ONTOLOGIES

from oncofhir.cli import EXIT_CODES, build_parser, main, run
from oncofhir.demo import generate
from oncofhir.dictionary import compile_dictionary


def test_a_missing_bundle_file_is_one_line_and_exit_4(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "--use-case", "uc3", "missing.ndjson"]) == 4
    captured = capsys.readouterr()
    assert captured.err == "oncofhir: error: missing.ndjson: no such file or folder\n"
    assert captured.out == ""


def test_defaults_work_outside_the_repository(tmp_path: Path, monkeypatch, capsys) -> None:
    """The bundled dictionaries and ontologies are the defaults: no relative path to the checkout."""
    monkeypatch.chdir(tmp_path)
    dd = compile_dictionary(DICTIONARIES / "uc1", ONTOLOGIES)
    Path("export.csv").write_text(generate(dd, "site", 3, seed=5), encoding="utf-8")
    assert main(["convert", str(DICTIONARIES / "uc1"), "export.csv", "--out", "out"]) == 0
    capsys.readouterr()
    assert main(["validate", "--use-case", "uc1", "out/bundles.ndjson"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "out/bundles.ndjson (uc1): 3 bundles, valid; 0 errors, 0 warnings"
    ndjson = str(tmp_path / "out" / "bundles.ndjson")
    assert main(["validate", "--use-case", "uc1", ndjson]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(f"{ndjson} (uc1): 3 bundles")  # no "uc1//tmp/..."
    assert main(["demo", "--out", "demo", "--records", "2"]) == 0
    assert sorted(p.relative_to("demo").as_posix() for p in Path("demo").rglob("*.csv"))[:2] == [
        "uc1/hospital_a.csv",
        "uc1/hospital_b.csv",
    ]


def test_a_bad_option_value_is_a_usage_error(capsys) -> None:
    args = ["qc", "--dictionary", "d.json", "--records", "r.csv", "--out-dir", "o", "--center", "c"]
    assert main([*args, "--weights", "[1, 2]"]) == 2
    assert capsys.readouterr().err == (
        "oncofhir: error: --weights: expected a mapping of check type to number, e.g. {range: 5}, got '[1, 2]'\n"
    )


def _crash(args: argparse.Namespace) -> int:
    raise KeyError("a bug")


def test_an_internal_error_is_exit_70_and_one_line(tmp_path: Path, capsys) -> None:
    assert run(argparse.Namespace(func=_crash, log=None)) == 70
    assert capsys.readouterr().err == (
        "oncofhir: internal error (KeyError: 'a bug'); rerun with --log FILE for the details\n"
    )
    log = tmp_path / "x.log"
    assert run(argparse.Namespace(func=_crash, log=str(log))) == 70
    assert capsys.readouterr().err == f"oncofhir: internal error, see {log}\n"
    assert "Traceback (most recent call last)" in log.read_text() and "KeyError: 'a bug'" in log.read_text()


def _parsers(parser: argparse.ArgumentParser, name: str = "oncofhir") -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                out += _parsers(child, f"{name} {sub}")
    return out


def test_every_option_has_help_and_shows_its_default(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # no line wrapping inside a long default path
    parsers = _parsers(build_parser())
    assert (
        len(parsers) == 24
    )  # oncofhir, dictionary (lint, compile), twelve other commands, 4 views, 3 privacy, 2 server
    for name, parser in parsers:
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
            shown = action.default not in (None, False, True, argparse.SUPPRESS) and not action.required
            if shown:
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)


def test_help_documents_the_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oncofhir.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert EXIT_CODES in result.stdout
    assert "  5   out of resources (disk full or quota, out of memory)\n" in result.stdout
    assert "  70  internal error" in result.stdout
    assert "  130 interrupted (Ctrl-C)\n" in result.stdout


def test_help_texts_hold_no_markup_and_no_none() -> None:
    """The top help began with RST markup (``oncofhir`` command line) and fhir's --identifier-system help said
    "(None: urn:oncofhir:pseudonym, ...)" where it meant its default."""
    for name, parser in _parsers(build_parser()):
        text = " ".join(parser.format_help().split())
        assert "``" not in text and "(None" not in text, name
    assert build_parser().description == "oncofhir command line: every workflow stage, usable without Snakemake."


def test_an_output_path_that_cannot_be_used_is_a_usage_error_not_a_bug(tmp_path: Path, capsys) -> None:
    """`oncofhir demo --out <a file>/x` was "internal error (FileExistsError/NotADirectoryError ...)", exit 70."""
    afile = tmp_path / "afile"
    afile.write_text("", encoding="utf-8")
    assert main(["demo", "--out", str(afile / "x")]) == 2
    assert capsys.readouterr().err == f"oncofhir: error: {afile / 'x'}: Not a directory\n"


def test_errors_found_is_exit_1(tmp_path: Path, capsys) -> None:
    """1 means "validation errors found" (documented), never a crash."""
    bad = tmp_path / "b.json"
    bad.write_text("{}", encoding="utf-8")
    assert main(["validate", "--use-case", "uc1", str(bad)]) == 1
    assert capsys.readouterr().out.startswith(f"{bad} (uc1): 1 bundles, INVALID (1 bundles with errors); ")
