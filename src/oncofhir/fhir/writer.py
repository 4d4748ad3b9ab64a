"""Write a center's bundles: one compact JSON file per patient, the center's NDJSON, an index and the rejects."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..ingest import Reject, write_rejects
from ..io_utils import private_dir, safe_stem, write_private
from .builder import Built


def write_center(
    built: Iterable[Built],
    bundle_dir: str | Path,
    ndjson_path: str | Path,
    index_path: str | Path,
    rejects_path: str | Path,
    prior_rejects: list[Reject],
) -> dict[str, Any]:
    """Write everything for one center and return the counts (resources by type, absent-data markers)."""
    bundle_dir = private_dir(bundle_dir)
    for stale in bundle_dir.glob("*.json"):  # a rerun replaces the center's bundles as a whole
        stale.unlink()
    rejects = list(prior_rejects)
    lines: list[bytes] = []
    index_lines = ["record_id\tfile\tbundle_id\tresources\n"]
    by_type: Counter[str] = Counter()
    absent = 0
    used_names: set[str] = set()
    bundles = 0
    for item in built:
        if item.bundle is None:
            rejects.append(Reject(item.row, item.record_id, "fhir", item.reason or "unknown error"))
            continue
        stem = safe_stem(item.record_id)
        if stem.lower() in used_names:  # case-insensitive file systems: never let two patients share a file
            stem = safe_stem("\x00" + item.record_id)
        used_names.add(stem.lower())
        data = orjson.dumps(item.bundle)
        write_private(bundle_dir / f"{stem}.json", data)
        lines.append(data)
        bundles += 1
        for entry in item.bundle["entry"]:
            by_type[entry["resource"]["resourceType"]] += 1
        absent += data.count(b'/data-absent-reason"')
        rid = item.record_id.replace("\t", " ").replace("\n", " ")
        index_lines.append(f"{rid}\t{stem}.json\t{item.bundle['id']}\t{len(item.bundle['entry'])}\n")
    write_private(Path(ndjson_path), b"\n".join(lines) + (b"\n" if lines else b""))
    write_private(Path(index_path), "".join(index_lines).encode("utf-8"))
    rejects.sort(key=lambda r: r.row)
    write_rejects(rejects, rejects_path)
    return {
        "bundles": bundles,
        "rejected": len(rejects),
        "resources": dict(sorted(by_type.items())),
        "absent_data_markers": absent,
    }
