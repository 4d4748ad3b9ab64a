"""Write a center's bundles: one compact JSON file per patient, the center's NDJSON, an index and the rejects."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..ingest import Reject, write_rejects
from ..io_utils import DIR_MODE, FILE_MODE, safe_stem, write_private
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

    Patient files go to a hidden staging folder that replaces ``bundle_dir`` in one rename at the end, so a killed
    job leaves either the previous complete set or nothing, never a half-written center (and no per-file rename).
    """
    bundle_dir = Path(bundle_dir)
    staging = bundle_dir.with_name(f".{bundle_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=DIR_MODE, parents=True)
    os.chmod(staging, DIR_MODE)
    rejects = list(prior_rejects)
    lines: list[bytes] = []
    index_lines = ["record_id\tfile\tbundle_id\tresources\n"]
    by_type: Counter[str] = Counter()
    absent = 0
    used_names: set[str] = set()
    for item in built:
        if item.bundle is None:
            rejects.append(Reject(item.row, item.record_id, "fhir", item.reason or "unknown error"))
            continue
        stem = safe_stem(item.record_id)
        if stem.lower() in used_names:  # case-insensitive file systems: never let two patients share a file
            stem = safe_stem("\x00" + item.record_id)
        used_names.add(stem.lower())
        data = orjson.dumps(item.bundle)
        fd = os.open(staging / f"{stem}.json", _FLAGS, FILE_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        lines.append(data)
        for entry in item.bundle["entry"]:
            by_type[entry["resource"]["resourceType"]] += 1
        absent += data.count(b'/data-absent-reason"')
        rid = item.record_id.replace("\t", " ").replace("\n", " ")
        index_lines.append(f"{rid}\t{stem}.json\t{item.bundle['id']}\t{len(item.bundle['entry'])}\n")
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    os.rename(staging, bundle_dir)
    write_private(Path(ndjson_path), b"\n".join(lines) + (b"\n" if lines else b""))
    write_private(Path(index_path), "".join(index_lines).encode("utf-8"))
    rejects.sort(key=lambda r: r.row)
    write_rejects(rejects, rejects_path)
    return {
        "bundles": len(lines),
        "rejected": len(rejects),
        "resources": dict(sorted(by_type.items())),
        "absent_data_markers": absent,
    }
