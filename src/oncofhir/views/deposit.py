"""The analysis tables in the EGA deposit: encrypt each center's Parquet files, and rebuild tables from a download.

A center's tables go to ``<EGA root>/tables/<use case>/<center>/<use case>.<center>.<view>.parquet.c4gh`` (unique,
EGA-safe names), listed in ``<EGA root>/tables/<use case>/<center>.manifest.tsv`` with the same columns and
checksums as the bundles (pseudonym empty, like the center's NDJSON; the secret fingerprint of the center's FHIR
stage, so a deposit still records one secret); the workflow's ``manifest`` rule merges them
into ``ega/manifest.tsv`` and ``oncofhir verify`` checks them like every other file. A data user who downloaded the
files runs ``oncofhir tables --decrypt --sk KEY FILES-OR-FOLDERS --out-dir tables/`` to get the Parquet files back
in the workflow's layout and a ``cohort.duckdb`` over them; the workflow builds its own ``cohort.duckdb`` from the
same files (:func:`cohort_from_deposit`) when it holds a recipient's private key.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..deposit.c4gh import Encryptor
from ..deposit.keys import PASSPHRASE_ENV, fingerprint, load_private_key, load_recipients, quiet_crypt4gh
from ..deposit.manifest import TABLES, format_manifest
from ..deposit.names import C4GH_SUFFIX, ega_name_problem
from ..errors import ConfigError, InputDataError
from ..io_utils import clean_stale, private_writer, temp_path, write_private
from .tables import PARQUET, private_tree, table_files, write_database, write_rows_database

_NAME = re.compile(r"^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z][A-Za-z0-9_]*)\.parquet\.c4gh$")


def encrypt_tables(
    tables_dir: str | Path,
    out_dir: str | Path,
    manifest_out: str | Path,
    *,
    use_case: str,
    center: str,
    recipients: Sequence[str],
    sender_key: str | None = None,
    fhir_summary: str | Path | None = None,
    generalise: tuple[str | Path, str | Path, str | Path, str | Path] | None = None,
) -> dict[str, Any]:
    """Encrypt every ``*.parquet`` of a center's table folder into ``out_dir`` (``<root>/tables/<uc>/<center>``).

    ``generalise`` (the compiled dictionary, the use case's privacy report, its views folder and the center's NDJSON)
    makes the deposit copy of a use case with generalisation rules: the views run again over the generalised bundles
    (:func:`generalised_tables`), and those Parquet bytes, never on disk in clear, are encrypted instead of the
    folder's files; the result then has the per-rule counts under ``generalised``.

    ``fhir_summary`` (the FHIR stage's ``summary.json``) gives the secret fingerprint every manifest row records, as
    :func:`oncofhir.deposit.encrypt.stage_encrypt` does for the bundles: ``merge`` and ``verify`` refuse a deposit
    whose rows record different secrets. Staged under an oncofhir temp name (removed when a killed job left it).
    """
    quiet_crypt4gh()
    clean_stale(out_dir, manifest_out)  # what a killed run of this job left
    pubkeys = load_recipients(list(recipients))
    secret = load_private_key(sender_key) if sender_key else os.urandom(32)
    out_dir = Path(out_dir)
    if (out_dir.parent.parent.name, out_dir.parent.name, out_dir.name) != (TABLES, use_case, center):
        raise ConfigError(f"the output folder must be <EGA root>/{TABLES}/{use_case}/{center}", path=str(out_dir))
    sources = sorted(p for p in Path(tables_dir).glob(f"*{PARQUET}") if not p.name.startswith("."))
    if not sources:
        raise InputDataError("no Parquet table to encrypt", path=str(tables_dir))
    generalised, counts = None, {}
    if generalise is not None:
        dictionary, privacy, views_dir, ndjson = generalise
        generalised, counts = generalised_tables(dictionary, privacy, views_dir, ndjson, center)
    if generalised is not None and sorted(generalised) != [p.name for p in sources]:
        raise InputDataError(
            f"the generalised tables {sorted(generalised)} are not the folder's tables", path=str(tables_dir)
        )
    names = [f"{use_case}.{center}.{p.name}{C4GH_SUFFIX}" for p in sources]
    bad = [f"{n!r} {why}" for n in names if (why := ega_name_problem(n))]
    if bad:
        raise InputDataError("file names the EGA would refuse", details=bad)
    secret_fp = _secret_fingerprint(fhir_summary)
    staging = temp_path(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    encryptor = Encryptor(secret, pubkeys)
    rows = []
    prefix = f"{TABLES}/{use_case}/{center}/"
    try:
        for src, name in zip(sources, names, strict=True):
            if generalised is not None:
                fd_out = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    sums = encryptor.encrypt_bytes(generalised[src.name], fd_out)
                finally:
                    os.close(fd_out)
                rows.append((use_case, center, "", prefix + name, *map(str, sums), secret_fp))
                continue
            fd_in = os.open(src, os.O_RDONLY)
            try:
                fd_out = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    sums = encryptor.encrypt_fd(fd_in, fd_out, os.fstat(fd_in).st_size)
                finally:
                    os.close(fd_out)
            finally:
                os.close(fd_in)
            rows.append((use_case, center, "", prefix + name, *map(str, sums), secret_fp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.rename(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    Path(manifest_out).parent.mkdir(parents=True, exist_ok=True)
    write_private(manifest_out, format_manifest(rows))
    recipients_fp = [fingerprint(pk) for pk in pubkeys]
    done = {"use_case": use_case, "center": center, "files": len(rows), "recipients": recipients_fp}
    return {**done, "generalised": counts} if generalise is not None else done


def generalised_tables(
    dictionary: str | Path, privacy_json: str | Path, views_dir: str | Path, ndjson: str | Path, center: str
) -> tuple[dict[str, bytes] | None, dict[str, dict[str, int]]]:
    """The deposit copy of a center's tables when its use case has generalisation rules: the views run over the
    bundles generalised by the privacy report's plan (oncofhir.privacy.generalise), each Parquet file built in
    memory (file name -> bytes); None without a rule. Also the per-rule counts of what changed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..privacy.generalise import BundleGeneraliser, load_plan
    from .tables import load_views, read_ndjson, run_views, to_table

    dd, plan = load_plan(dictionary, privacy_json)
    if not plan:
        return None, {}
    generaliser = BundleGeneraliser(dd, plan)

    def bundles() -> Any:
        for number, bundle in read_ndjson(ndjson):
            generaliser.apply(bundle)
            yield number, bundle

    views = load_views(views_dir)
    out = {}
    for view, rows in zip(views, run_views(views, bundles(), str(ndjson)), strict=True):
        sink = pa.BufferOutputStream()
        pq.write_table(to_table(view, rows, center), sink, compression="zstd")
        out[f"{view.name}{PARQUET}"] = sink.getvalue().to_pybytes()
    return out, generaliser.counts


def _secret_fingerprint(fhir_summary: str | Path | None) -> str:
    """The pseudonym secret's fingerprint the FHIR stage recorded (empty without a summary)."""
    if fhir_summary is None:
        return ""
    try:
        summary = json.loads(Path(fhir_summary).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read the FHIR summary: {exc}", path=str(fhir_summary)) from None
    return str(summary.get("secret_fingerprint", ""))


def _encrypted_tables(paths: Sequence[str | Path]) -> list[Path]:
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.rglob(f"*{PARQUET}{C4GH_SUFFIX}") if not p.name.startswith("."))
        elif item.is_file():
            found.append(item)
        else:
            raise InputDataError("not found", path=str(item))
    return found


def _named(files: Sequence[Path]) -> list[tuple[Path, str, str, str]]:
    """(file, use case, center, view) of each encrypted table, from its name; a foreign name is refused."""
    named = []
    for path in files:
        m = _NAME.match(path.name)
        if not m:
            raise InputDataError("not an oncofhir table name (<use case>.<center>.<view>.parquet.c4gh)", path=str(path))
        named.append((path, *m.groups()))
    return named


def _decrypt_to(keys: list[Any], path: Path, dest: Any) -> None:
    from crypt4gh import lib

    with open(path, "rb") as src:
        try:
            lib.decrypt(keys, src, dest)
        except Exception as exc:  # a wrong key or a damaged file: the user's to fix, named
            raise InputDataError(f"does not decrypt with this key ({type(exc).__name__})", path=str(path)) from None


def _keys(private_key: str | Path, passphrase_env: str | None) -> list[Any]:
    quiet_crypt4gh()
    return [(0, load_private_key(str(private_key), passphrase_env or PASSPHRASE_ENV), None)]


def decrypt_tables(
    paths: Sequence[str | Path], private_key: str | Path, out_dir: str | Path, passphrase_env: str | None = None
) -> dict[str, Any]:
    """Decrypt downloaded ``<uc>.<center>.<view>.parquet.c4gh`` files into ``out_dir/<uc>/<center>/<view>.parquet``
    (0600 in 0700 folders) and write ``out_dir/cohort.duckdb`` over them."""
    keys = _keys(private_key, passphrase_env)
    files = _encrypted_tables(paths)
    if not files:
        raise InputDataError("no encrypted table (*.parquet.c4gh) found", path=", ".join(map(str, paths)))
    out = Path(out_dir)
    written = 0
    for path, use_case, center, view in _named(files):
        folder = private_tree(out, out / use_case / center)
        with private_writer(folder / f"{view}{PARQUET}") as dest:
            _decrypt_to(keys, path, dest)
        written += 1
    views = write_database(out, table_files(out), out / "cohort.duckdb")
    return {"files": written, "tables": views, "database": str(out / "cohort.duckdb")}


def cohort_from_deposit(
    paths: Sequence[str | Path], private_key: str | Path, out: str | Path, passphrase_env: str | None = None
) -> dict[str, Any]:
    """Write the cohort database ``out`` with the rows of every encrypted table under ``paths`` (the workflow's
    ``ega/tables/<uc>/<center>`` folders), decrypted in memory: one DuckDB table per view, every center's rows.

    The workflow's way to a local cohort database when the plaintext tables are deleted once encrypted
    (``deposit.temp_plaintext``): the encrypted tables are final outputs, so one changed center reruns only its own
    jobs and this one. No decrypted Parquet file is written; the database holds the rows (0600, in a 0700 folder).
    It is also the data user's path (:func:`decrypt_tables`), so each run proves the deposit decrypts and reads.
    """
    import pyarrow.parquet as pq

    keys = _keys(private_key, passphrase_env)
    files = _encrypted_tables(paths)
    if not files:
        raise InputDataError("no encrypted table (*.parquet.c4gh) found", path=", ".join(map(str, paths)))
    by_view: dict[str, list[Path]] = {}
    for path, _use_case, _center, view in sorted(_named(files), key=lambda n: (n[3], n[1], n[2])):
        by_view.setdefault(view, []).append(path)

    def tables() -> Iterator[tuple[str, list[Any]]]:
        for view, sources in sorted(by_view.items()):  # one view in memory at a time
            parts = []
            for path in sources:
                buffer = io.BytesIO()
                _decrypt_to(keys, path, buffer)
                buffer.seek(0)
                try:
                    parts.append(pq.read_table(buffer))
                except Exception as exc:  # decrypted, but not Parquet: a damaged or foreign file
                    raise InputDataError(f"not a Parquet table once decrypted ({exc})", path=str(path)) from None
            yield view, parts

    n = write_rows_database(tables(), out)
    return {"files": len(files), "tables": n, "database": str(out)}
