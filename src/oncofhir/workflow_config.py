"""The workflow's configuration and centers sheet, checked before any job with one-line messages.

Why a module and not Snakefile code: the rules only need the resolved values, while the checks (which file named a
key, where its relative paths start, which sheet line is wrong) are plain Python, testable without Snakemake.

Path rule (config/README.md): a relative input path in a config file (``centers``, ``dictionaries``,
``ontologies``, ``demo.folder``, ``deposit.recipients``, ``deposit.sender_key``, ``tables.cohort.sk``,
``validation.hl7_validator.home``)
is relative to the folder of the config file that sets it, and an ``export`` in the centers sheet is relative to the
sheet's folder; ``--config key=value`` values and ``results`` (where Snakemake writes) are relative to the working
directory. Once resolved, a path below the working directory is written relative to it (absolute otherwise), so
no job's input or output names the absolute location of a run folder, and a finished run copied elsewhere is
still complete.
"""

from __future__ import annotations

import csv
import difflib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from .errors import ConfigError

#: Config keys holding input paths, resolved against the folder of the config file that sets them.
PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("centers",),
    ("dictionaries",),
    ("ontologies",),
    ("demo", "folder"),
    ("deposit", "recipients"),
    ("deposit", "sender_key"),
    ("tables", "cohort", "sk"),
    ("validation", "hl7_validator", "home"),
)

REQUIRED_COLUMNS = ("use_case", "center", "export")


@dataclass(frozen=True)
class ConfigSource:
    """One layer of the merged config: a config file (or the command line's ``--config``) and its values."""

    label: str
    base: Path
    data: Mapping[str, Any]


def config_sources(
    default_file: str | Path, configfiles: Sequence[str | Path], cli_config: Mapping[str, Any], cwd: Path
) -> list[ConfigSource]:
    """The layers in Snakemake's merge order: the workflow's config file, each ``--configfile``, then ``--config``."""
    sources = []
    for path in [default_file, *configfiles]:
        path = Path(path)
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        sources.append(ConfigSource(str(path), path.resolve().parent, data if isinstance(data, Mapping) else {}))
    if cli_config:
        sources.append(ConfigSource("--config", cwd, dict(cli_config)))
    return sources


def _lookup(data: Mapping[str, Any], key: Sequence[str]) -> tuple[bool, Any]:
    for part in key:
        if not isinstance(data, Mapping) or part not in data:
            return False, None
        data = data[part]
    return True, data


def source_of(sources: Sequence[ConfigSource], key: Sequence[str]) -> ConfigSource | None:
    """The last layer that sets ``key`` (the one whose value the merged config holds), or None (a default)."""
    for source in reversed(sources):
        if _lookup(source.data, key)[0]:
            return source
        for depth in range(len(key) - 1, 0, -1):  # a parent set to a non-mapping replaces its children
            found, value = _lookup(source.data, key[:depth])
            if found and not isinstance(value, Mapping):
                return source
        # a parent mapping without the key (demo: {records: 7}): Snakemake merges it key by key, so the key's value
        # comes from an earlier layer
    return None


def describe(source: ConfigSource | None) -> str:
    """Where a value came from, for messages: the file, or the command line, or the schema's default."""
    if source is None:
        return "the default"
    return "--config on the command line" if source.label == "--config" else source.label


def resolve_path(value: str, base: Path, cwd: Path) -> str:
    """``value`` (``~`` expanded) against ``base``, then relative to ``cwd`` (the working directory) when it lies
    below it, absolute otherwise: a run copied or moved with its folder keeps the same job inputs and outputs, and
    so does a data folder moved away from the workflow checkout it uses (``snakemake -s``)."""
    full = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
    relative = os.path.relpath(full, cwd)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return full
    return relative


@dataclass(frozen=True)
class ResolvedPath:
    """Where a config path came from: its value as written, the folder it is relative to, and the layer."""

    key: str
    written: str | list[str]
    base: Path
    source: ConfigSource | None

    def where(self) -> str:
        """Where relative paths of this key start, for "not found" messages."""
        if self.source is None:
            return f"the schema's default, relative to the workflow's config folder {self.base}"
        if self.source.label == "--config":
            return f"relative paths on the command line start at the working directory {self.base}"
        return f"relative paths in a config file start at its folder {self.base}"


def resolve_config_paths(
    config: dict[str, Any], sources: Sequence[ConfigSource], cwd: Path, default_base: Path
) -> dict[str, ResolvedPath]:
    """Rewrite every input path of ``config`` in place (see the module's path rule; a schema default is relative to
    ``default_base``, the workflow's config folder); returns, per dotted key, what was written and where it was
    resolved from, for the messages that say where a path was looked for."""
    resolved: dict[str, ResolvedPath] = {}
    for key in PATH_KEYS:
        found, value = _lookup(config, key)
        if not found or value in ("", None, []):
            continue
        source = source_of(sources, key)
        base = source.base if source is not None else default_base
        parent, last = config, key[-1]
        for part in key[:-1]:
            parent = parent[part]
        if isinstance(value, list):
            parent[last] = [resolve_path(str(item), base, cwd) for item in value]
        else:
            parent[last] = resolve_path(str(value), base, cwd)
        resolved[".".join(key)] = ResolvedPath(".".join(key), value, base, source)
    return resolved


#: Input paths that must exist before any job: key -> (folder expected, needed only when this key is true).
_MUST_EXIST: dict[str, tuple[bool, tuple[str, ...] | None]] = {
    "centers": (False, None),
    "dictionaries": (True, None),
    "ontologies": (True, None),
    "deposit.recipients": (False, ("deposit", "enabled")),
    "deposit.sender_key": (False, ("deposit", "enabled")),
    "tables.cohort.sk": (False, ("deposit", "enabled")),
    "validation.hl7_validator.home": (True, ("validation", "hl7_validator", "enabled")),
}


def check_input_paths(config: Mapping[str, Any], resolved: Mapping[str, ResolvedPath]) -> None:
    """Every configured input file or folder exists; the message names the key, its file and the base folder."""
    for key, (folder, needed) in _MUST_EXIST.items():
        if key not in resolved or (needed is not None and not _lookup(config, needed)[1]):
            continue
        info = resolved[key]
        values = _lookup(config, key.split("."))[1]
        written = info.written if isinstance(info.written, list) else [info.written]
        for value, original in zip(values if isinstance(values, list) else [values], written, strict=True):
            ok = os.path.isdir(value) if folder else os.path.isfile(value)
            if not ok:
                what = "folder" if folder else "file"
                problem = f"{what} '{original}' not found"
                if os.path.exists(value):  # there, but a folder where a file is expected (or the reverse)
                    problem = f"'{original}' is not a {what} but a {'file' if folder else 'folder'}"
                raise ConfigError(
                    f"{describe(info.source)}: config key '{key}': {problem} "
                    f"(looked for {Path(value).resolve()}; {info.where()})"
                )


def _unknown_keys(data: Any, schema: Mapping[str, Any], prefix: str = "") -> list[tuple[str, list[str]]]:
    """(dotted key, valid keys at that level) for every key the schema does not know."""
    if not isinstance(data, Mapping):
        return []
    properties = schema.get("properties", {})
    valid = list(properties) + list(schema.get("propertyNames", {}).get("enum", []))
    closed = schema.get("additionalProperties") is False or "enum" in schema.get("propertyNames", {})
    found = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key in properties:
            found += _unknown_keys(value, properties[key], f"{dotted}.")
        elif closed and key not in valid:
            found.append((dotted, valid))
    return found


def _scalar_types(schema: Mapping[str, Any]) -> set[str]:
    """The non-string scalar types a schema admits: its ``type`` (one or a list), or the types of its ``enum``."""
    kinds = schema.get("type", [])
    found = {kinds} if isinstance(kinds, str) else set(kinds)
    for value in schema.get("enum", []):
        found.add("boolean" if isinstance(value, bool) else "integer" if isinstance(value, int) else "string")
    return found & {"boolean", "integer", "number"}


def _coerce(value: str, types: set[str]) -> Any:
    """``value`` read as a config file would read it (YAML), when that gives one of ``types``; else unchanged (the
    schema then refuses it, naming the key)."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(parsed, bool):
        return parsed if "boolean" in types else value
    if isinstance(parsed, int):
        return parsed if types & {"integer", "number"} else value
    if isinstance(parsed, float):
        return parsed if "number" in types else value
    return value


def _coerce_tree(data: Any, schema: Mapping[str, Any]) -> Any:
    if isinstance(data, str):
        types = _scalar_types(schema)
        return _coerce(data, types) if types else data
    if isinstance(data, Mapping):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            key: _coerce_tree(value, properties.get(key, extra if isinstance(extra, Mapping) else {}))
            for key, value in data.items()
        }
    if isinstance(data, list):
        items = schema.get("items")
        return [_coerce_tree(item, items if isinstance(items, Mapping) else {}) for item in data]
    return data


def _merge(target: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def coerce_cli_config(config: dict[str, Any], schema: Mapping[str, Any], sources: list[ConfigSource]) -> None:
    """Give ``--config`` values the types a config file gives them, where the schema says boolean, integer or
    number, in ``config`` and in the ``--config`` layer of ``sources``.

    Why: Snakemake reads a nested ``--config`` value (``ig='{enabled: true}'``) with YAML's base loader, which keeps
    every scalar a string, so the schema would refuse ``'true'`` as "not of type 'boolean'". Only keys the schema
    types are read again: a string key keeps ``'123'``; a value that is no boolean or number stays a string and the
    schema check names its key in one line. ``--config`` is the last layer, so its values are the merged ones."""
    for index, source in enumerate(sources):
        if source.label != "--config":
            continue
        typed = _coerce_tree(source.data, schema)
        sources[index] = ConfigSource(source.label, source.base, typed)
        _merge(config, typed)


def check_config(config: Mapping[str, Any], schema: Mapping[str, Any], sources: Sequence[ConfigSource]) -> None:
    """Raise a one-line ConfigError for an unknown key (with the nearest valid one) or a value the schema refuses,
    naming the file that set it; the schema itself is never printed."""
    for source in sources:
        for dotted, valid in _unknown_keys(source.data, schema):
            key = dotted.rsplit(".", 1)[-1]
            parent = dotted[: -len(key)]
            near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"did you mean '{parent}{near[0]}'?" if near else f"valid keys here: {', '.join(valid)}"
            raise ConfigError(f"{describe(source)}: unknown config key '{dotted}' ({hint}; config/README.md)")
    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        path = [str(part) for part in error.absolute_path]
        where = describe(source_of(sources, path)) if path else "config"
        key = ".".join(path) or "config"
        message = error.message
        if error.validator == "enum" and any(isinstance(v, bool) for v in error.validator_value):
            # as written in YAML (true, not Python's True)
            choices = ", ".join(str(v).lower() if isinstance(v, bool) else repr(v) for v in error.validator_value)
            message = f"{error.instance!r} is not one of [{choices}]"
        raise ConfigError(f"{where}: config key '{key}': {message} (config/README.md)")
    _check_weights(config, sources)


def _check_weights(config: Mapping[str, Any], sources: Sequence[ConfigSource]) -> None:
    """The merged QC weights (each >= 0 by the schema) can make a score: a partial ``qc.weights`` is merged over
    the defaults, so only all of them together tell; checked here so it stops the run before any job, not in every
    center's QC job."""
    found, weights = _lookup(config, ("qc", "weights"))
    if found and isinstance(weights, Mapping) and weights and not any(weights.values()):
        where = describe(source_of(sources, ("qc", "weights")))
        raise ConfigError(
            f"{where}: config key 'qc.weights': every weight is 0, so no score can be computed; give at least "
            "one check type a weight above 0 (config/README.md)"
        )


def check_thresholds(config: Mapping[str, Any], sources: Sequence[ConfigSource]) -> None:
    """Every ``qc.thresholds`` name is a check type, or a variable or rule id of some use case's dictionary (with
    an optional ``.<type>``): a typo would otherwise flag nothing, silently. Run after the paths are resolved
    (``dictionaries``), before any job; the schema has already checked the values (0-100)."""
    found, thresholds = _lookup(config, ("qc", "thresholds"))
    if not found or not thresholds:
        return
    from .qc.model import TYPES

    names: set[str] = set(TYPES)
    for uc in use_cases(config["dictionaries"]):
        folder = Path(config["dictionaries"], uc)
        try:
            with open(folder / "redcap_dictionary.csv", encoding="utf-8-sig", newline="") as handle:
                names |= {row[0].strip().lower() for row in csv.reader(handle) if row}
            mapping = yaml.safe_load((folder / "mapping.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, csv.Error, yaml.YAMLError):
            continue  # the dictionary stage reports an unreadable dictionary with its own message
        rules = mapping.get("rules") if isinstance(mapping, Mapping) else None
        names |= {r["id"] for r in rules or [] if isinstance(r, Mapping) and isinstance(r.get("id"), str)}
    for key in thresholds:
        base, _, kind = str(key).partition(".")
        if base in names and (not kind or kind in TYPES):
            continue
        where = describe(source_of(sources, ("qc", "thresholds")))
        what = f"'{kind}' is not a check type" if base in names else f"'{base}' is no check type, variable or rule id"
        near = difflib.get_close_matches(base, sorted(names), n=1, cutoff=0.7)
        hint = f"; did you mean '{near[0]}'?" if near and base not in names else ""
        raise ConfigError(f"{where}: config key 'qc.thresholds.{key}': {what} of any use case{hint} (config/README.md)")


def use_cases(dictionaries: str | Path) -> list[str]:
    """The use cases: folders of ``dictionaries`` holding a mapping.yaml (never a fixed list)."""
    folder = Path(dictionaries)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "mapping.yaml").is_file())


@dataclass(frozen=True)
class Center:
    """One row of the centers sheet, with its line number and its export resolved (module's path rule)."""

    line: int
    use_case: str
    center: str
    export: str
    dag: str
    description: str
    is_demo: bool


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as an export: missing, not a regular file (reading a FIFO blocks forever), or
    unreadable; None when it can."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        return f"is not a regular file but {kind}; give the path of the exported CSV file itself"
    if not os.access(path, os.R_OK):
        return "is not readable (permission denied)"
    return None


def _row_error(sheet: str, line: int, column: str, value: str, schema: Mapping[str, Any]) -> ConfigError:
    rule = schema["properties"].get(column, {}).get("description", "")
    return ConfigError(f"{sheet}, line {line}, column {column}: invalid value '{value}': {rule}")


def read_centers(sheet: str, schema: Mapping[str, Any], dictionaries: str, demo_folder: str, cwd: Path) -> list[Center]:
    """Read and check the centers sheet (TSV; lines starting with ``#`` are comments): every problem is one
    ConfigError naming the sheet, its line, column and value, raised before any job."""
    problem = _file_problem(sheet)
    if problem:
        raise ConfigError(f"centers sheet '{sheet}' {problem} (config key 'centers')")
    base = Path(sheet).resolve().parent
    known = use_cases(dictionaries)
    demo = Path(demo_folder).resolve()
    validator = Draft202012Validator(schema)
    centers: list[Center] = []
    seen: dict[tuple[str, str], int] = {}
    with open(sheet, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header: list[str] | None = None
        for fields in reader:
            line = reader.line_num
            if not fields or not "".join(fields).strip() or fields[0].startswith("#"):
                continue
            if header is None:
                header = [name.strip() for name in fields]
                missing = [name for name in REQUIRED_COLUMNS if name not in header]
                if missing and len(header) == 1 and ("," in header[0] or ";" in header[0]):
                    sep = "comma" if "," in header[0] else "semicolon"
                    raise ConfigError(
                        f"{sheet}, line {line}: {sep}-separated; the centers sheet is a TSV file: separate "
                        f"{', '.join(REQUIRED_COLUMNS)} by tabs (save as 'Text (tab-delimited)' from a spreadsheet)"
                    )
                if missing:
                    raise ConfigError(
                        f"{sheet}, line {line}: missing column(s) {', '.join(missing)} "
                        f"(the header must name {', '.join(REQUIRED_COLUMNS)}; found {', '.join(header)})"
                    )
                continue
            if len(fields) > len(header):
                raise ConfigError(f"{sheet}, line {line}: {len(fields)} tab-separated values for {len(header)} columns")
            row = dict(zip(header, [*fields, *[""] * (len(header) - len(fields))], strict=True))
            error = best_match(validator.iter_errors(row))
            if error is not None:
                column = str(error.absolute_path[0]) if error.absolute_path else "export"
                raise _row_error(sheet, line, column, row.get(column, ""), schema)
            use_case, center = row["use_case"], row["center"]
            if use_case not in known:
                raise ConfigError(
                    f"{sheet}, line {line}, column use_case: unknown use case '{use_case}'; valid: "
                    f"{', '.join(known) or 'none'} (folders of {os.path.abspath(dictionaries)} with a mapping.yaml)"
                )
            if (use_case, center) in seen:
                raise ConfigError(
                    f"{sheet}: center {use_case}/{center} is listed twice (lines {seen[use_case, center]} and {line})"
                )
            seen[use_case, center] = line
            export = resolve_path(row["export"], base, cwd)
            is_demo = Path(export).resolve().is_relative_to(demo)
            if is_demo:  # the demo_export rule's output names it this way
                export = os.path.join(demo_folder, os.path.relpath(Path(export).resolve(), demo))
            problem = _file_problem(export)
            if problem and not (is_demo and problem == "does not exist"):
                raise ConfigError(
                    f"{sheet}, line {line}, column export: export '{row['export']}' of {use_case}/{center} {problem}"
                    f" (looked for {Path(export).resolve()}; relative paths in the sheet start at its folder {base})"
                )
            centers.append(
                Center(line, use_case, center, export, row.get("dag", ""), row.get("description", ""), is_demo)
            )
    if header is None or not centers:
        raise ConfigError(f"centers sheet '{sheet}' lists no center")
    return centers


def check_demo_keys(centers: Sequence[Center], sheet: str, demo_folder: str, demo_keys_source: str) -> None:
    """Real exports are never encrypted for the throwaway demo keys nor pseudonymised with the public demo secret:
    with any export outside the demo folder, ``deposit.demo_keys`` must be false."""
    real = [c for c in centers if not c.is_demo]
    if not real:
        return
    first = real[0]
    raise ConfigError(
        f"{sheet}, line {first.line}: export '{first.export}' of {first.use_case}/{first.center} lies outside the "
        f"demo folder {os.path.abspath(demo_folder)} (real data), but deposit.demo_keys is true ({demo_keys_source}); "
        "the demo keys and the public demo secret are never for real data. In your config file set "
        "deposit: {demo_keys: false, recipients: [<EGA's public key>, ...]} and put a real secret in "
        "ONCOFHIR_PSEUDONYM_KEY (config/README.md)"
    )
