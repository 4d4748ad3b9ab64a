"""Write a center's bundles: the center's NDJSON, an index and the rejects, and one JSON file per patient if asked.

The workflow keeps no per-patient plaintext file by default: the encrypt stage reads each patient's bundle from its
NDJSON line, and the per-patient files are made (by :func:`explode_ndjson`, rule ``bundle_files``) only for the
HL7 validator or when the plaintext is kept. Creating, reading and deleting 20,000 small files was a third of a
20,000-patient run's system time.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import InputDataError, OncofhirError
from ..ingest import Reject, write_rejects
from ..io_utils import DIR_MODE, FILE_MODE, clean_stale, private_parents, private_writer, safe_stem, temp_path
from ..tsv import cell
from .builder import Built
from .index import INDEX_HEADER, iter_index

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class _Folder:
    """Per-patient files written into a hidden staging folder (an oncofhir temp name, removed when stale) that
    replaces the target in one rename."""

    def __init__(self, target: Path) -> None:
        self.target = target
        clean_stale(target)
        self.staging = temp_path(target)
        shutil.rmtree(self.staging, ignore_errors=True)
        private_parents(self.staging)
        self.staging.mkdir(mode=DIR_MODE)
        os.chmod(self.staging, DIR_MODE)

    def write(self, name: str, data: bytes) -> None:
        fd = os.open(self.staging / name, _FLAGS, FILE_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def commit(self) -> None:
        if self.target.exists():
            shutil.rmtree(self.target)
        os.rename(self.staging, self.target)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)  # a failed job leaves no plaintext behind


def write_center(
    built: Iterable[Built | Reject],
    bundle_dir: str | Path | None,
    ndjson_path: str | Path,
    index_path: str | Path,
    rejects_path: str | Path,
    prior_rejects: Iterable[Reject],
    on_bundle: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Write everything for one center and return the counts (resources by type, absent-data markers).

    ``built`` holds, in row order, a :class:`Built` per record or a :class:`Reject` for a record an earlier check
    kept out (the QC gate); ``prior_rejects`` (the ingest rejects) are sorted by row. The rejects file lists them
    all by row, the earlier stage's first on a tie, as a stable sort of the three would.

    Bundles are named by their patient key (the pseudonym in the workflow); the index, kept locally and never
    deposited, maps each record id to it, in NDJSON order. The NDJSON, the index and the rejects are streamed to
    temp files renamed when complete, and with ``bundle_dir`` the per-patient files go to a staging folder renamed
    at the end, so a killed job leaves the previous complete set or nothing. Memory is one bundle plus each
    patient's file name (the case-insensitive collision check), whatever the center's size; this stage's rejects
    wait in an anonymous temp file (0600, unlinked from the start) until they are merged with the earlier ones.

    ``on_bundle(line, bundle)`` is called with each bundle once it is serialised (its NDJSON line number): the
    analysis tables are built from the bundles as they are written, never parsed back (oncofhir.views.stage).
    """
    by_type: Counter[str] = Counter()
    absent = bundles = 0
    used_names: set[str] = set()
    with contextlib.ExitStack() as cleanup:
        folder = _Folder(Path(bundle_dir)) if bundle_dir is not None else None
        if folder is not None:
            cleanup.callback(folder.discard)
        ndjson = cleanup.enter_context(private_writer(ndjson_path))
        index = cleanup.enter_context(private_writer(index_path))
        index.write(INDEX_HEADER.encode("utf-8"))
        spool = cleanup.enter_context(_RejectSpool(Path(rejects_path).parent))
        for item in built:
            if isinstance(item, Reject):
                spool.add(item)
                continue
            if item.bundle is None:
                spool.add(Reject(item.row, item.record_id, "fhir", item.reason or "unknown error"))
                continue
            key = item.patient_key or item.record_id  # the pseudonym when pseudonymising: the record id never leaves
            stem = safe_stem(key)
            if stem.lower() in used_names:  # case-insensitive file systems: never let two patients share a file
                if key != item.record_id:  # two records, one pseudonym: refuse rather than merge two patients
                    raise OncofhirError(f"two records share the pseudonym {key!r} (row {item.row})")
                stem = safe_stem("\x00" + key)
            used_names.add(stem.lower())
            data = orjson.dumps(item.bundle)
            if folder is not None:
                folder.write(f"{stem}.json", data)
            ndjson.write(data)
            ndjson.write(b"\n")
            bundles += 1
            if on_bundle is not None:
                on_bundle(bundles, item.bundle)
            for entry in item.bundle["entry"]:
                by_type[entry["resource"]["resourceType"]] += 1
            absent += data.count(b'/data-absent-reason"')
            rid = cell(item.record_id)  # escaped and spreadsheet-safe (oncofhir.tsv); the key names files: as is
            index.write(f"{rid}\t{key}\t{stem}.json\t{item.bundle['id']}\t{len(item.bundle['entry'])}\n".encode())
        rejected = _Counted(heapq.merge(_in_row_order(prior_rejects), spool.rejects(), key=_row))
        write_rejects(rejected, rejects_path)
        if folder is not None:
            folder.commit()
    return {
        "bundles": bundles,
        "rejected": rejected.count,
        "resources": dict(sorted(by_type.items())),
        "absent_data_markers": absent,
    }


def _row(reject: Reject) -> int:
    return reject.row


def _in_row_order(rejects: Iterable[Reject]) -> Iterator[Reject]:
    """``rejects``, checked to be sorted by row (what a merge needs; ingest writes them so)."""
    last = 0
    for reject in rejects:
        if reject.row < last:
            raise OncofhirError(f"the ingest rejects are not sorted by row (row {reject.row} after row {last})")
        last = reject.row
        yield reject


class _Counted:
    """An iterator that counts what passes through it."""

    def __init__(self, items: Iterator[Reject]) -> None:
        self.items = items
        self.count = 0

    def __iter__(self) -> Iterator[Reject]:
        for item in self.items:
            self.count += 1
            yield item


class _RejectSpool:
    """This stage's rejects, in the order they come, in an anonymous temp file: a center whose records the gate
    mostly excludes must not hold them in memory."""

    def __init__(self, folder: Path) -> None:
        self.handle: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - 0600, already unlinked
        self.last = 0

    def __enter__(self) -> _RejectSpool:
        return self

    def __exit__(self, *_: object) -> None:
        self.handle.close()

    def add(self, reject: Reject) -> None:
        if reject.row <= self.last:
            raise OncofhirError(f"records out of row order (row {reject.row} after row {self.last})")
        self.last = reject.row
        self.handle.write(orjson.dumps([reject.row, reject.record_id, reject.stage, reject.reason]) + b"\n")

    def rejects(self) -> Iterator[Reject]:
        self.handle.flush()
        self.handle.seek(0)
        for line in self.handle:
            row, record_id, stage, reason = orjson.loads(line)
            yield Reject(row, record_id, stage, reason)


def explode_ndjson(ndjson_path: str | Path, index_path: str | Path, bundle_dir: str | Path) -> int:
    """One ``<file>.json`` per NDJSON line, named by the index's ``file`` column (same order); returns the count.

    Byte for byte what :func:`write_center` writes with a ``bundle_dir``: the line without its newline. Files are
    0600 in a 0700 folder that appears complete or not at all.
    """
    names = [name for (name,) in iter_index(index_path, "file")]
    folder = _Folder(Path(bundle_dir))
    try:
        count = 0
        with open(ndjson_path, "rb") as ndjson:
            for count, line in enumerate(ndjson, start=1):
                if count > len(names):
                    break
                folder.write(names[count - 1], line.rstrip(b"\n"))
        if count != len(names):
            raise InputDataError(
                f"the NDJSON has {count} line(s) but the index lists {len(names)} bundle(s): rerun the FHIR stage",
                path=str(ndjson_path),
            )
        folder.commit()
    except BaseException:
        folder.discard()
        raise
    return count
