"""Reader for REDCap data dictionaries in REDCap's own import format.

The file is the one a data manager uploads to REDCap to build the eCRF, so oncofhir reads exactly that format
(18 columns, ``Variable / Field Name`` first) rather than a private variant.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DictionaryError

COLUMNS = {
    "name": "Variable / Field Name",
    "form": "Form Name",
    "section": "Section Header",
    "type": "Field Type",
    "label": "Field Label",
    "choices": "Choices, Calculations, OR Slider Labels",
    "note": "Field Note",
    "validation": "Text Validation Type OR Show Slider Number",
    "min": "Text Validation Min",
    "max": "Text Validation Max",
    "identifier": "Identifier?",
    "branching": "Branching Logic (Show field only if...)",
    "required": "Required Field?",
    "annotation": "Field Annotation",
}
FIELD_TYPES = {
    "text",
    "notes",
    "dropdown",
    "radio",
    "checkbox",
    "yesno",
    "truefalse",
    "calc",
    "descriptive",
    "slider",
    "file",
    "sql",
}
DATA_TYPES = {"text", "notes", "dropdown", "radio", "checkbox", "yesno", "truefalse", "slider", "calc"}
VALIDATIONS = {
    "",
    "integer",
    "number",
    "number_1dp",
    "number_2dp",
    "date_ymd",
    "date_dmy",
    "date_mdy",
    "datetime_ymd",
    "datetime_seconds_ymd",
    "time",
    "email",
    "alpha_only",
    "phone",
    "zipcode",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAXLENGTH = re.compile(r"@MAXLENGTH\s*=\s*['\"]?(\d+)")
_DEFAULT = re.compile(r"@DEFAULT\s*=\s*(['\"])(.*?)\1")


@dataclass(slots=True)
class RedcapField:
    """One row of the REDCap dictionary, with choices parsed."""

    name: str
    form: str
    type: str
    label: str
    choices: dict[str, str] = field(default_factory=dict)
    validation: str = ""
    min: str = ""
    max: str = ""
    branching: str = ""
    required: bool = False
    identifier: bool = False
    note: str = ""
    annotation: str = ""
    row: int = 0
    #: A ``calc`` field's REDCap calculation (the "Choices, Calculations" column), recomputed by QC.
    calculation: str = ""

    @property
    def max_length(self) -> int | None:
        """The ``@MAXLENGTH`` action tag, if any (REDCap's own length limit)."""
        m = _MAXLENGTH.search(self.annotation)
        return int(m.group(1)) if m else None

    @property
    def default(self) -> str | None:
        """The ``@DEFAULT`` action tag value, if any."""
        m = _DEFAULT.search(self.annotation)
        return m.group(2) if m else None


def parse_choices(text: str, *, where: str) -> dict[str, str]:
    """Parse ``0, male | 1, female`` (REDCap's format; ``;`` is not REDCap but not accepted either)."""
    out: dict[str, str] = {}
    if not text.strip():
        return out
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        code, sep, label = part.partition(",")
        code = code.strip()
        if not sep or not code or not re.fullmatch(r"-?[0-9A-Za-z_.]+", code):
            raise DictionaryError(f"{where}: choice '{part}' is not of the form '<code>, <label>'")
        if code in out:
            raise DictionaryError(f"{where}: choice code '{code}' appears twice")
        out[code] = label.strip()
    return out


def read_redcap_dictionary(path: str | Path) -> list[RedcapField]:
    """Read and check a REDCap dictionary; every defect is reported at once with row and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DictionaryError(f"cannot read REDCap dictionary: {exc}", path=str(path)) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in (COLUMNS["name"], COLUMNS["form"], COLUMNS["type"], COLUMNS["label"]) if c not in header]
    if missing:
        raise DictionaryError(
            f"not a REDCap data dictionary: missing column(s) {', '.join(repr(m) for m in missing)}", path=str(path)
        )
    problems: list[str] = []
    fields: list[RedcapField] = []
    seen: dict[str, int] = {}
    for rowno, row in enumerate(reader, start=2):
        if None in row:
            problems.append(f"row {rowno}: more cells than header columns (unescaped quotes?)")
            continue

        def get(key: str, row: dict[str, str] = row) -> str:
            return (row.get(COLUMNS[key]) or "").strip()

        name = get("name")
        where = f"row {rowno}, variable '{name}'"
        if not _NAME.match(name):
            problems.append(f"row {rowno}: variable name '{name}' must match [a-z][a-z0-9_]*")
            continue
        if name in seen:
            problems.append(f"{where}: duplicate variable (first at row {seen[name]})")
            continue
        seen[name] = rowno
        ftype = get("type")
        if ftype not in FIELD_TYPES:
            problems.append(f"{where}: unknown field type '{ftype}'")
            continue
        validation = get("validation")
        if ftype == "text" and validation not in VALIDATIONS:
            problems.append(f"{where}: unknown text validation type '{validation}'")
        try:
            choices = parse_choices(get("choices"), where=where) if ftype in {"dropdown", "radio", "checkbox"} else {}
        except DictionaryError as exc:
            problems.append(str(exc))
            continue
        if ftype in {"dropdown", "radio", "checkbox"} and not choices:
            problems.append(f"{where}: a {ftype} field needs choices")
        if ftype == "yesno":
            choices = {"1": "Yes", "0": "No"}
        elif ftype == "truefalse":
            choices = {"1": "True", "0": "False"}
        for bound in ("min", "max"):
            value = get(bound)
            if value and validation in {"integer", "number"}:
                try:
                    float(value)
                except ValueError:
                    problems.append(f"{where}: validation {bound} '{value}' is not a number")
        fields.append(
            RedcapField(
                name=name,
                form=get("form"),
                type=ftype,
                label=get("label"),
                choices=choices,
                validation=validation if ftype == "text" else "",
                min=get("min"),
                max=get("max"),
                branching=get("branching"),
                required=get("required").lower() == "y",
                identifier=get("identifier").lower() == "y",
                note=get("note"),
                annotation=get("annotation"),
                row=rowno,
                calculation=get("choices") if ftype == "calc" else "",
            )
        )
    if not fields and not problems:
        problems.append("the dictionary has no variables")
    if problems:
        raise DictionaryError("invalid REDCap data dictionary", path=str(path), details=problems)
    return fields
