"""Reading REDCap data dictionaries in REDCap's import format."""

from pathlib import Path

import pytest

from oncofhir.dictionary.redcap import parse_choices, read_redcap_dictionary
from oncofhir.errors import DictionaryError

HEADER = (
    '"Variable / Field Name","Form Name","Section Header","Field Type","Field Label",'
    '"Choices, Calculations, OR Slider Labels","Field Note","Text Validation Type OR Show Slider Number",'
    '"Text Validation Min","Text Validation Max","Identifier?","Branching Logic (Show field only if...)",'
    '"Required Field?","Custom Alignment","Question Number (surveys only)","Matrix Group Name","Matrix Ranking?",'
    '"Field Annotation"\n'
)


def write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "redcap_dictionary.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_parse_choices_keeps_commas_in_labels() -> None:
    assert parse_choices("0, FOLFOX (fluorouracil, oxaliplatin) | 1, Other", where="x") == {
        "0": "FOLFOX (fluorouracil, oxaliplatin)",
        "1": "Other",
    }


def test_reads_fields_with_action_tags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            "record_id,f,,text,ID,,,,,,,,y,,,,,",
            'sex,f,,radio,Sex,"0, male | 1, female",,,,,,,y,,,,,"@DEFAULT=\'1\' @MAXLENGTH=3"',
            "age,f,,text,Age,,,integer,0,110,,[sex] = '1',,,,,,",
            "ok,f,,yesno,OK?,,,,,,,,,,,,,",
        ],
    )
    fields = read_redcap_dictionary(path)
    assert [f.name for f in fields] == ["record_id", "sex", "age", "ok"]
    assert fields[1].choices == {"0": "male", "1": "female"}
    assert fields[1].default == "1"
    assert fields[1].max_length == 3
    assert (fields[2].validation, fields[2].min, fields[2].max, fields[2].branching) == (
        "integer",
        "0",
        "110",
        "[sex] = '1'",
    )
    assert fields[3].choices == {"1": "Yes", "0": "No"}


def test_every_problem_is_reported_with_its_row(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            "record_id,f,,text,ID,,,,,,,,,,,,,",
            'sex,f,,dropdown,Sex,"0; male | 1; female",,,,,,,,,,,,',
            "record_id,f,,text,Again,,,,,,,,,,,,,",
            "Bad-Name,f,,text,X,,,,,,,,,,,,,",
            "w,f,,widget,X,,,,,,,,,,,,,",
            "n,f,,text,N,,,integer,zero,,,,,,,,,",
            "c,f,,radio,C,,,,,,,,,,,,,",
        ],
    )
    with pytest.raises(DictionaryError) as err:
        read_redcap_dictionary(path)
    assert err.value.details == [
        "row 3, variable 'sex': choice '0; male' is not of the form '<code>, <label>'",
        "row 4, variable 'record_id': duplicate variable (first at row 2)",
        "row 5: variable name 'Bad-Name' must match [a-z][a-z0-9_]*",
        "row 6, variable 'w': unknown field type 'widget'",
        "row 7, variable 'n': validation min 'zero' is not a number",
        "row 8, variable 'c': a radio field needs choices",
    ]
    assert str(err.value).startswith(f"{path}: invalid REDCap data dictionary")


def test_not_a_redcap_dictionary(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Variable/Field Name,Field Type\nrecord_id,text\n", encoding="utf-8")
    with pytest.raises(DictionaryError, match="missing column"):
        read_redcap_dictionary(path)
