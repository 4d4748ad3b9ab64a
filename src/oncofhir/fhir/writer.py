"""Write a center's bundles: the center's NDJSON, an index and the rejects, and one JSON file per patient if asked.

The workflow keeps no per-patient plaintext file by default: the encrypt stage reads each patient's bundle from its
NDJSON line, and the per-patient files are made (by :func:`explode_ndjson`, rule ``bundle_files``) only for the
HL7 validator or when the plaintext is kept. Creating, reading and deleting 20,000 small files was a third of a
20,000-patient run's system time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputDataError, OncofhirError
from ..ingest import Reject, write_rejects
from ..io_utils import (
    DIR_MODE,
    FILE_MODE,
    clean_stale,
    private_parents,
    private_writer,
    safe_stem,
    temp_path,
    write_private,
)
from ..tsv import cell
from .builder import Built

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
INDEX_HEADER = "record_id\tpatient_key\tfile\tbundle_id\tresources\n"


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
    built: Iterable[Built],
    bundle_dir: str | Path | None,
    ndjson_path: str | Path,
    index_path: str | Path,
    rejects_path: str | Path,
    prior_rejects: list[Reject],
) -> dict[str, Any]:
    """Write everything for one center and return the counts (resources by type, absent-data markers).

    Bundles are named by their patient key (the pseudonym in the workflow); the index, kept locally and never
    deposited, maps each record id to it, in NDJSON order. The NDJSON is streamed to a temp file renamed when
    complete, and with ``bundle_dir`` the per-patient files go to a staging folder renamed at the end, so a killed
    job leaves the previous complete set or nothing, and memory stays O(one bundle) whatever the center's size.
    """
    rejects = list(prior_rejects)
    index_lines = [INDEX_HEADER]
    by_type: Counter[str] = Counter()
    absent = bundles = 0
    used_names: set[str] = set()
    with contextlib.ExitStack() as cleanup:
        folder = _Folder(Path(bundle_dir)) if bundle_dir is not None else None
        if folder is not None:
            cleanup.callback(folder.discard)
        ndjson = cleanup.enter_context(private_writer(ndjson_path))
        for item in built:
            if item.bundle is None:
                rejects.append(Reject(item.row, item.record_id, "fhir", item.reason or "unknown error"))
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
            for entry in item.bundle["entry"]:
                by_type[entry["resource"]["resourceType"]] += 1
            absent += data.count(b'/data-absent-reason"')
            rid = cell(item.record_id)  # escaped and spreadsheet-safe (oncofhir.tsv); the key names files: as is
            index_lines.append(f"{rid}\t{key}\t{stem}.json\t{item.bundle['id']}\t{len(item.bundle['entry'])}\n")
        if folder is not None:
            folder.commit()
    write_private(Path(index_path), "".join(index_lines).encode("utf-8"))
    rejects.sort(key=lambda r: r.row)
    write_rejects(rejects, rejects_path)
    return {
        "bundles": bundles,
        "rejected": len(rejects),
        "resources": dict(sorted(by_type.items())),
        "absent_data_markers": absent,
    }


def explode_ndjson(ndjson_path: str | Path, index_path: str | Path, bundle_dir: str | Path) -> int:
    """One ``<file>.json`` per NDJSON line, named by the index's ``file`` column (same order); returns the count.

    Byte for byte what :func:`write_center` writes with a ``bundle_dir``: the line without its newline. Files are
    0600 in a 0700 folder that appears complete or not at all.
    """
    lines = Path(index_path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] + "\n" != INDEX_HEADER:
        raise InputDataError("not a FHIR index written by the FHIR stage", path=str(index_path))
    names = [line.split("\t")[2] for line in lines[1:]]
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
