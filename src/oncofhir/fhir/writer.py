"""Write a center's bundles: one compact JSON file per patient, the center's NDJSON, an index and the rejects."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..errors import OncofhirError
from ..ingest import Reject, write_rejects
from ..io_utils import DIR_MODE, FILE_MODE, private_writer, safe_stem, write_private
from .builder import Built

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def write_center(
    built: Iterable[Built],
    bundle_dir: str | Path,
    ndjson_path: str | Path,
    index_path: str | Path,
    rejects_path: str | Path,
    prior_rejects: list[Reject],
) -> dict[str, Any]:
    """Write everything for one center and return the counts (resources by type, absent-data markers).

    Files are named by the bundle's patient key (the pseudonym in the workflow); the index, kept locally and never
    deposited, maps each record id to it. Patient files go to a hidden staging folder that replaces ``bundle_dir``
    in one rename at the end, and the NDJSON is streamed to a temp file renamed when complete, so a killed job
    leaves either the previous complete set or nothing, never a half-written center, and memory stays O(one
    bundle) whatever the center's size.
    """
    bundle_dir = Path(bundle_dir)
    staging = bundle_dir.with_name(f".{bundle_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=DIR_MODE, parents=True)
    os.chmod(staging, DIR_MODE)
    rejects = list(prior_rejects)
    index_lines = ["record_id\tpatient_key\tfile\tbundle_id\tresources\n"]
    by_type: Counter[str] = Counter()
    absent = bundles = 0
    used_names: set[str] = set()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, staging, ignore_errors=True)  # a failed job leaves no plaintext behind
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
            fd = os.open(staging / f"{stem}.json", _FLAGS, FILE_MODE)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            ndjson.write(data)
            ndjson.write(b"\n")
            bundles += 1
            for entry in item.bundle["entry"]:
                by_type[entry["resource"]["resourceType"]] += 1
            absent += data.count(b'/data-absent-reason"')
            rid = item.record_id.replace("\t", " ").replace("\n", " ")
            index_lines.append(f"{rid}\t{key}\t{stem}.json\t{item.bundle['id']}\t{len(item.bundle['entry'])}\n")
        if bundle_dir.exists():
            shutil.rmtree(bundle_dir)
        os.rename(staging, bundle_dir)
    write_private(Path(index_path), "".join(index_lines).encode("utf-8"))
    rejects.sort(key=lambda r: r.row)
    write_rejects(rejects, rejects_path)
    return {
        "bundles": bundles,
        "rejected": len(rejects),
        "resources": dict(sorted(by_type.items())),
        "absent_data_markers": absent,
    }
