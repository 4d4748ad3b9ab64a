"""The deposit manifest: what was encrypted, for whom, with sizes and checksums; merged and verified here.

One row per encrypted file: ``use_case, center, pseudonym, file, plain_bytes, plain_md5, plain_sha256,
c4gh_bytes, c4gh_md5, c4gh_sha256, secret_fingerprint``. ``file`` is the path below the EGA root (``results/ega``)
as uploaded, ``<use_case>/<center>/<name>.c4gh``; ``pseudonym`` is the patient's pseudonym (the file stem) for a
bundle and empty for the center's NDJSON; ``secret_fingerprint`` identifies the pseudonym secret that made the
center's pseudonyms (:func:`oncofhir.deposit.pseudonym.secret_fingerprint`), so a deposit mixing two secrets is
refused. EGA's upload tools record the same md5 and sha256 values, so the manifest reconciles the submission with
what the workflow produced.

A center's analysis tables (``oncofhir.views.deposit``) are listed the same way, in their own per-center manifest
``tables/<use_case>/<center>.manifest.tsv``: ``file`` is ``tables/<use_case>/<center>/<use_case>.<center>.<view>
.parquet.c4gh``, ``pseudonym`` empty, the center's secret fingerprint like its bundles.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..errors import InputDataError, OncofhirError
from ..io_utils import private_writer
from .names import C4GH_SUFFIX
from .streams import HashingReader, HashingWriter

COLUMNS = (
    "use_case",
    "center",
    "pseudonym",
    "file",
    "plain_bytes",
    "plain_md5",
    "plain_sha256",
    "c4gh_bytes",
    "c4gh_md5",
    "c4gh_sha256",
    "secret_fingerprint",
)
HEADER = "\t".join(COLUMNS) + "\n"
#: The folder below the EGA root that holds the centers' encrypted analysis tables and their manifests.
TABLES = "tables"
TABLE_SUFFIX = ".parquet" + C4GH_SUFFIX

Row = dict[str, str]


def format_manifest(rows: Iterable[Sequence[str]]) -> bytes:
    """The TSV text of a manifest (rows in COLUMNS order)."""
    return (HEADER + "".join("\t".join(row) + "\n" for row in rows)).encode("utf-8")


def read_manifest(path: str | Path) -> list[Row]:
    """The rows of a manifest as dicts; an unexpected header or a short row is an error naming the line."""
    return list(iter_manifest(path))


def iter_manifest(path: str | Path) -> Iterator[Row]:
    """:func:`read_manifest` one row at a time (a merged manifest has a row per patient of the consortium)."""
    path = Path(path)
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise InputDataError(f"cannot read manifest: {exc.strerror}", path=str(path)) from None
    with handle:
        first = handle.readline()
        if first != HEADER:
            raise InputDataError(f"not a deposit manifest: the header must be {HEADER.strip()!r}", path=str(path))
        for number, line in enumerate(handle, start=2):
            values = line.rstrip("\n").split("\t")
            if len(values) != len(COLUMNS):
                raise InputDataError(f"line {number}: {len(values)} columns instead of {len(COLUMNS)}", path=str(path))
            yield dict(zip(COLUMNS, values, strict=True))


def merge_manifests(paths: Sequence[str | Path], out: str | Path) -> dict[str, int]:
    """Concatenate per-center manifests into one, sorted by use case, center and file.

    Refuses (with the offending values) a file listed twice or a pseudonym shared by two centers of one use
    case: the latter means two centers exported the same record id, and the archive would merge two patients.
    Streams: one center's rows at a time are held (plus the set of file names and pseudonyms seen), so memory
    follows the largest center, not the consortium.
    """
    order: list[tuple[str, str, Path]] = []
    secrets: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        rows = list(iter_manifest(path))
        centers = {(r["use_case"], r["center"]) for r in rows}
        if len(centers) > 1:
            raise InputDataError("not a per-center manifest: it lists several centers", path=str(path))
        if centers:
            use_case, center = centers.pop()
            order.append((use_case, center, Path(path)))
            for fingerprint in sorted({r["secret_fingerprint"] for r in rows}):
                secrets[fingerprint].append(f"{use_case}/{center}")
    order.sort()
    if len(secrets) > 1:
        raise OncofhirError(mixed_secrets_message(secrets))
    problems: list[str] = []
    seen_files: set[str] = set()
    owner: dict[tuple[str, str], str] = {}
    counts = {"files": 0, "bundles": 0, "centers": len({(u, c) for u, c, _ in order})}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with private_writer(out) as handle:
        handle.write(HEADER.encode("utf-8"))
        for _, _, path in order:
            rows = sorted(read_manifest(path), key=lambda r: r["file"])
            for row in rows:
                if row["file"] in seen_files:
                    problems.append(f"file {row['file']} is listed twice")
                seen_files.add(row["file"])
                if row["pseudonym"]:
                    counts["bundles"] += 1
                    key = (row["use_case"], row["pseudonym"])
                    other = owner.setdefault(key, row["center"])
                    if other != row["center"]:
                        problems.append(
                            f"pseudonym {row['pseudonym']} of use case {row['use_case']} occurs in centers {other} "
                            f"and {row['center']} (the same record id in two centers)"
                        )
            counts["files"] += len(rows)
            handle.write(format_manifest([r[c] for c in COLUMNS] for r in rows)[len(HEADER) :])
        if problems:
            raise OncofhirError("the per-center manifests do not merge", details=problems[:20])
    return counts


def mixed_secrets_message(secrets: dict[str, list[str]]) -> str:
    """The refusal of a deposit whose centers were pseudonymised with different secrets (fingerprint -> centers)."""
    groups = "; ".join(
        f"secret {fingerprint or '(none recorded)'}: {', '.join(centers[:5])}{' ...' if len(centers) > 5 else ''}"
        for fingerprint, centers in sorted(secrets.items())
    )
    return (
        f"the centers were pseudonymised with {len(secrets)} different secrets ({groups}): one deposit must use one "
        "secret; rerun every center with the project's secret (snakemake --forcerun fhir, docs/deposit.md)"
    )


def is_table(file: str) -> bool:
    """True for a manifest row's file that is an analysis table (``tables/<uc>/<center>/<name>``)."""
    return file.startswith(TABLES + "/") and file.count("/") == 3


def _check_row(row: Row, line: int) -> list[str]:
    """A row's file must lie in its use case's and center's folder and be named by its pseudonym (a table: by its
    use case and center, with no pseudonym)."""
    use_case, center, pseudonym, file = row["use_case"], row["center"], row["pseudonym"], row["file"]
    parts = file.split("/")
    if is_table(file):
        stem = f"{use_case}.{center}."
        if (
            not pseudonym
            and parts[1:3] == [use_case, center]
            and parts[3].startswith(stem)
            and parts[3].endswith(TABLE_SUFFIX)
        ):
            return []
        return [
            f"line {line}: file {file} is not a table of its row's use case and center "
            f"({TABLES}/{use_case}/{center}/{stem}<view>{TABLE_SUFFIX}, no pseudonym)"
        ]
    if len(parts) != 3 or parts[:2] != [use_case, center]:
        return [f"line {line}: file {file} is not in the folder of its row's use case and center ({use_case}/{center})"]
    expected = f"{pseudonym}.json{C4GH_SUFFIX}" if pseudonym else f"{use_case}.{center}.ndjson{C4GH_SUFFIX}"
    if parts[2] == expected:
        return []
    if pseudonym:
        return [f"line {line}: file {file} is not named by its row's pseudonym {pseudonym}"]
    return [f"line {line}: file {file} has no pseudonym but is not the center's NDJSON ({expected})"]


def _compare(rows: Iterable[tuple[str, ...]], own: Path, name: str) -> list[str]:
    """The rows of a merged manifest against the per-center manifest ``own`` (named ``name``) they came from."""
    if not own.is_file():
        return [f"{name}: the center's own manifest is missing"]
    theirs = {tuple(r.values()) for r in iter_manifest(own)}
    ours = set(rows)
    problems = [
        f"{row[3]}: listed in {name} but not in the merged manifest (or differently)" for row in sorted(theirs - ours)
    ]
    problems += [
        f"{row[3]}: listed in the merged manifest but not in {name} (or differently)" for row in sorted(ours - theirs)
    ]
    return problems


def _expected_tables(root: Path, use_case: str, center: str) -> set[str] | None:
    """The table files a center's deposit holds: one per ViewDefinition of ``<root>/../views/<use_case>/`` (the
    workflow's results tree), or None where that folder is absent."""
    views = root.parent / "views" / use_case
    if not views.is_dir():
        return None
    prefix = f"{TABLES}/{use_case}/{center}/{use_case}.{center}."
    return {prefix + p.stem + TABLE_SUFFIX for p in views.glob("*.json") if not p.name.startswith(".")}


def _reconcile(
    root: Path, by_center: dict[tuple[str, str], list[tuple[str, ...]]], merged: bool, tables: bool
) -> list[str]:
    """Check each center's rows against its own manifests (for a merged one), its FHIR summary's bundle count and
    its views' table count.

    Catches a file deleted together with its row in the merged manifest, and (where the results tree is present,
    ``<root>/../fhir/<uc>/<center>.summary.json`` and ``<root>/../views/<uc>/``) a file deleted together with its
    rows in both manifests. ``tables``: the manifest is expected to list the centers' tables (a merged manifest,
    or a center's table manifest)."""
    problems: list[str] = []
    for (use_case, center), rows in sorted(by_center.items()):
        table_rows = [row for row in rows if is_table(row[3])]
        bundle_rows = [row for row in rows if not is_table(row[3])]
        table_manifest = root / TABLES / use_case / f"{center}.manifest.tsv"
        if merged:
            problems += _compare(
                bundle_rows, root / use_case / f"{center}.manifest.tsv", f"{use_case}/{center}.manifest.tsv"
            )
            if table_rows or table_manifest.is_file():
                problems += _compare(table_rows, table_manifest, f"{TABLES}/{use_case}/{center}.manifest.tsv")
        expected = _expected_tables(root, use_case, center) if tables else None
        if expected is not None:
            listed_tables = {row[3] for row in table_rows}
            problems += [
                f"{file}: the center's table is not in the manifest" for file in sorted(expected - listed_tables)
            ]
            problems += [
                f"{file}: listed in the manifest but no view of {use_case} makes it"
                for file in sorted(listed_tables - expected)
            ]
        summary_path = root.parent / "fhir" / use_case / f"{center}.summary.json"
        if not summary_path.is_file():
            continue
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if bundle_rows:  # a center's table manifest lists no bundle
            bundles = sum(1 for row in bundle_rows if row[2])
            if summary.get("bundles") != bundles:
                problems.append(
                    f"{use_case}/{center}: the manifest lists {bundles} bundle(s) but the FHIR stage made "
                    f"{summary.get('bundles')} ({summary_path})"
                )
        recorded = summary.get("secret_fingerprint")
        listed = {row[-1] for row in rows}
        if recorded is not None and listed != {recorded}:
            problems.append(
                f"{use_case}/{center}: secret fingerprint {', '.join(sorted(listed))} in the manifest, "
                f"{recorded} in {summary_path}"
            )
    return problems


def _check(row: Row, prefix: str, size: int, md5: str, sha256: str) -> list[str]:
    found = {"bytes": str(size), "md5": md5, "sha256": sha256}
    return [
        f"{row['file']}: {'plaintext' if prefix == 'plain' else 'encrypted'} {what} {value} differs from the "
        f"manifest ({row[f'{prefix}_{what}']})"
        for what, value in found.items()
        if row[f"{prefix}_{what}"] != value
    ]


def verify(
    manifest_path: str | Path,
    root: str | Path | None = None,
    private_key: str | Path | None = None,
    passphrase_env: str | None = None,
    *,
    checksums: bool = True,
) -> list[str]:
    """Check every encrypted file against the manifest; with a private key, decrypt each and check the plaintext.

    Returns the problems found (empty when everything reconciles): a listed file missing, a size or checksum
    that differs, a file that does not decrypt with the key (not a recipient, or tampered with), any ``.c4gh``
    file in the manifest's folders that the manifest does not list (it would be uploaded unaccounted), a row whose
    file is not in its use case's and center's folder or not named by its pseudonym, centers pseudonymised with
    different secrets, a merged manifest that differs from the per-center ones, and a center whose bundle rows
    differ from the FHIR stage's count (``<root>/../fhir/<uc>/<center>.summary.json``, where present).
    With ``checksums=False`` (and no key) only existence and sizes are checked, from the file system alone.
    ``root`` is the EGA root the ``file`` column is relative to; by default the merged manifest's folder
    (``results/ega/manifest.tsv``) or two levels up from a per-center one (``results/ega/<uc>/<center>.manifest.tsv``),
    three from a center's table manifest (``results/ega/tables/<uc>/<center>.manifest.tsv``). The tables a merged
    or table manifest lists must be one per view of the use case (``<root>/../views/<uc>/``, where present).
    """
    from crypt4gh import lib

    from .keys import PASSPHRASE_ENV, load_private_key, quiet_crypt4gh

    quiet_crypt4gh()
    merged = not Path(manifest_path).name.endswith(".manifest.tsv")
    first = next(iter_manifest(manifest_path), None)
    table_manifest = not merged and first is not None and is_table(first["file"])
    if root is None:
        here = Path(manifest_path).parent
        root = here if merged else here.parent.parent if table_manifest else here.parent
    root = Path(root)
    rows = iter_manifest(manifest_path)
    keys = None
    if private_key is not None:
        keys = [(0, load_private_key(private_key, passphrase_env or PASSPHRASE_ENV), None)]
    problems: list[str] = []
    listed = set()
    by_center: dict[tuple[str, str], list[tuple[str, ...]]] = defaultdict(list)
    secrets: dict[str, list[str]] = defaultdict(list)
    for line, row in enumerate(rows, start=2):
        listed.add(row["file"])
        by_center[(row["use_case"], row["center"])].append(tuple(row.values()))
        problems += _check_row(row, line)
        path = os.path.join(root, row["file"])  # a string: pathlib costs ~20 us a row, 0.4 s per 20,000
        if not checksums and keys is None:
            try:
                size = os.stat(path).st_size
            except OSError as exc:
                problems.append(f"{row['file']}: cannot open ({exc.strerror})")
                continue
            if str(size) != row["c4gh_bytes"]:
                problems.append(f"{row['file']}: encrypted bytes {size} differ from the manifest ({row['c4gh_bytes']})")
            continue
        try:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115 (closed below, whatever happens)
        except OSError as exc:
            problems.append(f"{row['file']}: cannot open ({exc.strerror})")
            continue
        with raw:
            encrypted = HashingReader(raw)
            if keys is not None:
                plain = HashingWriter(None)
                try:
                    lib.decrypt(keys, encrypted, plain)
                except Exception as exc:  # any failure to decrypt is a finding, not a crash
                    reason = "not a recipient of this key" if "encryption method" in str(exc) else "corrupt"
                    problems.append(f"{row['file']}: does not decrypt ({reason}: {type(exc).__name__}: {exc})")
                    plain = None
                if plain is not None:
                    problems += _check(row, "plain", plain.size, plain.md5.hexdigest(), plain.sha256.hexdigest())
            encrypted.drain()
            problems += _check(row, "c4gh", encrypted.size, encrypted.md5.hexdigest(), encrypted.sha256.hexdigest())
    for (use_case, center), center_rows in sorted(by_center.items()):
        for fingerprint in sorted({row[-1] for row in center_rows}):
            secrets[fingerprint].append(f"{use_case}/{center}")
    if len(secrets) > 1:
        problems.append(mixed_secrets_message(secrets))
    problems += _reconcile(root, by_center, merged, tables=merged or table_manifest)
    folders = {f.rpartition("/")[0] for f in listed}
    for folder in sorted(folders):
        if not (root / folder).is_dir():
            continue
        for entry in os.scandir(root / folder):
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if entry.name.endswith(C4GH_SUFFIX) and rel not in listed:
                problems.append(f"{rel}: encrypted file not listed in the manifest")
    return problems


def stage_manifest(
    paths: Sequence[str | Path], out: str | Path, root: str | Path | None = None, *, checksums: bool = False
) -> dict[str, int]:
    """Merge the per-center manifests into ``out`` and check every encrypted file against it (no key needed).

    By default the check is the file system's view (every listed file exists with the listed size, no unlisted
    ``.c4gh`` file): the encrypt jobs computed the checksums on the bytes they wrote, and re-reading the whole
    deposit here would be the one serial step of the run (3 s per 20,000 patients). ``checksums=True`` re-reads
    and hashes every file; ``oncofhir verify`` does that, and with ``--sk`` decrypts and compares too.
    """
    summary = merge_manifests(paths, out)
    problems = verify(out, root if root is not None else Path(out).parent, checksums=checksums)
    if problems:
        Path(out).unlink()
        more = [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        raise OncofhirError("the encrypted files do not match their manifests", details=problems[:20] + more)
    return summary
