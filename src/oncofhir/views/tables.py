"""Run a use case's views over one center's NDJSON into Parquet, and describe all Parquet files in DuckDB.

Each view gives one Parquet file per center (``<out dir>/<view name>.parquet``) with a leading ``center`` column;
column types follow the view's column types (decimal -> double, integer -> int64, boolean, date -> date32,
``collection`` -> list of strings, everything else string). The files are pseudonymised patient data: written
0600 in 0700 folders, atomically.

The DuckDB database (``cohort.duckdb``) has one table or view per ViewDefinition name, merging every center of the
use case. Over local Parquet files (:func:`write_database`) it holds only views, with paths relative to its folder,
so it holds no patient data and moves with the folder (``oncofhir query`` sets DuckDB's ``file_search_path`` to
it). Built from the deposit (:func:`write_rows_database`) it holds the rows: pseudonymised patient data, 0600.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputDataError, OncofhirError
from ..io_utils import DIR_MODE, clean_stale, private_dir, private_writer, temp_path
from .runner import Column, CompiledView, ViewError

PARQUET = ".parquet"
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SAFE_TABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*/[A-Za-z0-9][A-Za-z0-9_-]*/[A-Za-z][A-Za-z0-9_]*\.parquet$")


class TableError(OncofhirError):
    """A view cannot be turned into a table (bad view file, a column the data makes invalid)."""

    exit_code = 4


class QueryError(OncofhirError):
    """A query the cohort database cannot run (usage error: the SQL, or a missing database)."""

    exit_code = 2


def load_views(folder: str | Path) -> list[CompiledView]:
    """Every ``*.json`` ViewDefinition in ``folder`` (sorted by name), compiled."""
    views = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            views.append(CompiledView(orjson.loads(path.read_bytes())))
        except (ValueError, ViewError) as exc:
            raise TableError(f"invalid ViewDefinition: {exc}", path=str(path)) from None
        if not views[-1].name:
            raise TableError("ViewDefinition has no name (the table is named after it)", path=str(path))
    if not views:
        raise TableError("no ViewDefinition (*.json) found", path=str(folder))
    return views


def read_ndjson(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, resource) for each line of an NDJSON file; a bad line names the file and line."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise InputDataError(f"cannot read the bundles: {exc.strerror}", path=str(path)) from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputDataError(f"line {number}: not JSON ({exc.msg})", path=str(path)) from None
            if not isinstance(resource, dict):
                raise InputDataError(f"line {number}: not a FHIR resource (a JSON object)", path=str(path))
            yield number, resource


def run_views(
    views: Sequence[CompiledView], resources: Iterable[tuple[int, dict[str, Any]]], source: str
) -> list[list[tuple[Any, ...]]]:
    """The rows of every view over the resources (one list per view)."""
    out: list[list[tuple[Any, ...]]] = [[] for _ in views]
    for number, resource in resources:
        for rows, view in zip(out, views, strict=True):
            try:
                rows.extend(view.rows(resource))
            except ViewError as exc:
                raise TableError(f"line {number}: view {view.name}: {exc}", path=source) from None
    return out


def _arrow_type(column: Column) -> Any:
    import pyarrow as pa

    if column.collection:
        return pa.list_(pa.string())
    return {
        "decimal": pa.float64(),
        "integer": pa.int64(),
        "positiveInt": pa.int64(),
        "unsignedInt": pa.int64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
    }.get(column.type or "", pa.string())


def _cells(column: Column, values: list[Any]) -> list[Any]:
    if column.collection:
        return [None if v is None else [None if x is None else str(x) for x in v] for v in values]
    if column.type == "date":
        return [None if v is None else date.fromisoformat(v) for v in values]
    if column.type in {"decimal"}:
        return [None if v is None else float(v) for v in values]
    if column.type in {"integer", "positiveInt", "unsignedInt", "boolean"}:
        return values
    return [None if v is None else v if isinstance(v, str) else str(v) for v in values]


#: Column types whose values pyarrow converts exactly as :func:`_cells` would when it accepts them at all (it
#: refuses a str in a number column, a number in a string column): the values go to pyarrow as they are, and only a
#: column it refuses pays the per-value conversion. Most columns are strings: this halves the time per table.
_DIRECT = {None, "string", "code", "uri", "url", "id", "canonical", "markdown", "oid", "uuid", "decimal"}


def _array(column: Column, values: Sequence[Any]) -> Any:
    """One column's values as a pyarrow array of the column's type."""
    import pyarrow as pa

    kind = _arrow_type(column)
    if not column.collection and column.type in _DIRECT:
        try:
            return pa.array(values, kind)
        except (ValueError, TypeError, pa.ArrowException):
            pass  # e.g. an integer in a string column: converted below
    return pa.array(_cells(column, list(values)), kind)


def to_table(view: CompiledView, rows: list[tuple[Any, ...]], center: str) -> Any:
    """A pyarrow Table of a view's rows, with the ``center`` column first."""
    import pyarrow as pa

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in view.columns]
    arrays = [pa.array([center] * len(rows), pa.string())]
    fields = [pa.field("center", pa.string())]
    for column, values in zip(view.columns, columns, strict=True):
        try:
            arrays.append(_array(column, values))
        except (ValueError, TypeError, pa.ArrowException) as exc:
            raise TableError(
                f"view {view.name}, column {column.name}: values do not fit type {column.type}: {type(exc).__name__}"
            ) from None
        fields.append(pa.field(column.name, _arrow_type(column)))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def private_tree(root: str | Path, leaf: str | Path) -> Path:
    """Create ``leaf`` below ``root`` with every folder from ``root`` down owner-only (0700)."""
    root, leaf = Path(root), Path(leaf)
    private_dir(leaf)
    folder = leaf
    while True:
        os.chmod(folder, DIR_MODE)
        if folder == root or folder.parent == folder or root not in folder.parents:
            break
        folder = folder.parent
    return leaf


def write_parquet(table: Any, path: str | Path) -> None:
    """Write a table as Parquet, 0600, atomically."""
    import pyarrow.parquet as pq

    with private_writer(path) as handle:
        pq.write_table(table, handle, compression="zstd")


def center_tables(
    views: Sequence[CompiledView], ndjson: str | Path, out_dir: str | Path, center: str, root: str | Path | None = None
) -> tuple[dict[str, int], list[list[tuple[Any, ...]]]]:
    """Run the views over a center's NDJSON and write one Parquet file per view; returns rows per view and rows."""
    all_rows = run_views(views, read_ndjson(ndjson), str(ndjson))
    out = private_tree(root or out_dir, out_dir)
    counts = {}
    for view, rows in zip(views, all_rows, strict=True):
        write_parquet(to_table(view, rows, center), out / f"{view.name}{PARQUET}")
        counts[str(view.name)] = len(rows)
    return counts, all_rows


def table_files(tables_dir: str | Path) -> dict[str, list[str]]:
    """view name -> Parquet files (relative to ``tables_dir``) of every center: ``<use case>/<center>/<view>``."""
    root = Path(tables_dir)
    found: dict[str, list[str]] = {}
    for path in sorted(root.glob(f"*/*/*{PARQUET}")):
        relative = path.relative_to(root).as_posix()
        if not _SAFE_TABLE.match(relative):  # the names go into SQL text (a view cannot take parameters)
            raise TableError("unexpected table file name (letters, digits, _ and - only)", path=str(path))
        found.setdefault(path.stem, []).append(relative)
    return found


def write_database(tables_dir: str | Path, views: dict[str, list[str]], out: str | Path) -> int:
    """Write ``out`` (DuckDB) with one view per table name over its Parquet files; returns the number of views."""
    import duckdb

    out = Path(out)
    clean_stale(out)  # what a killed run left
    tmp = temp_path(out)
    tmp.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            folder = str(Path(tables_dir).resolve()).replace("'", "''")
            con.execute(f"SET file_search_path = '{folder}'")  # DuckDB checks the files when creating a view
            for name, files in sorted(views.items()):
                # names and paths were checked against _SAFE_TABLE (letters, digits, _ - / only)
                listing = ", ".join(f"'{f}'" for f in files)
                sql = f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{listing}], union_by_name = true)'  # noqa: S608
                con.execute(sql)
        finally:
            con.close()
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(views)


def write_rows_database(tables: Iterable[tuple[str, list[Any]]], out: str | Path) -> int:
    """Write ``out`` (DuckDB, 0600 in a 0700 folder) holding one table per name with the rows of its Arrow tables
    (every center's, in the order given); returns the number of tables.

    Unlike :func:`write_database` the rows are inside: the workflow builds this database from the deposit, whose
    decrypted Parquet files exist only in memory (docs/tables.md#tables-and-the-cohort-database). Written under a
    temp name and renamed, so a killed job leaves the previous database or none.
    """
    import duckdb
    import pyarrow as pa

    out = Path(out)
    private_dir(out.parent)
    clean_stale(out)  # what a killed run left
    tmp = temp_path(out)
    tmp.unlink(missing_ok=True)
    n = 0
    try:
        con = duckdb.connect(str(tmp))  # in the 0700 folder: no one else can read it while it is written
        try:
            os.chmod(tmp, 0o600)
            for name, parts in tables:
                if not _TABLE_NAME.match(name):  # the name goes into SQL text
                    raise TableError(f"unexpected table name {name!r} (letters, digits and _ only)")
                con.register("oncofhir_rows", pa.concat_tables(parts, promote_options="default"))
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM oncofhir_rows')  # noqa: S608 (name checked)
                con.unregister("oncofhir_rows")
                n += 1
        finally:
            con.close()
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
        raise
    return n


def query(database: str | Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SQL statement on the cohort database (Parquet paths resolved against its folder)."""
    import duckdb

    db = Path(database)
    if not db.exists():
        raise QueryError(
            "cohort database not found (run the workflow; for real data with deposit.temp_plaintext set "
            "tables.cohort.sk; or build one from the deposit with oncofhir tables --decrypt)",
            path=str(db),
        )
    con = duckdb.connect(str(db), read_only=True)
    try:
        folder = str(db.resolve().parent).replace("'", "''")
        con.execute(f"SET file_search_path = '{folder}'")
        try:
            cur = con.execute(sql)
        except duckdb.IOException as exc:
            raise QueryError(
                f"a table's Parquet files are missing ({str(exc).splitlines()[0]}): the workflow deletes plaintext "
                "tables once encrypted (deposit.temp_plaintext); run with --notemp, or rebuild them from the "
                "deposit with oncofhir tables --decrypt",
                path=str(db),
            ) from None
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {str(exc).splitlines()[0]}", path=str(db)) from None
        names = [d[0] for d in cur.description or []]
        return names, cur.fetchall()
    finally:
        con.close()
