"""Layer 4, references: a collection bundle must be self-contained.

Every ``Reference.reference`` must resolve to an entry of the same bundle (by fullUrl, or ``Type/id`` for a
relative reference), to a resource of a type the element allows; fullUrls must be unique (core invariant bdl-7,
checked here rather than in FHIRPath because it compares entries with each other and names both of them). A
``urn:uuid:`` fullUrl's format is checked with the Bundle shell (engine).
Local references (``#id``) are contained resources: invariant ref-1 covers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .issues import Issue

LAYER = "references"
#: (entry index, location in its resource, reference, allowed target types)
Found = tuple[int, str, str, tuple[str, ...]]


def check(entries: Sequence[Any], refs: Sequence[Found]) -> list[Issue]:
    """Issues of the fullUrls of ``entries`` and of the references ``refs`` found in their resources."""
    issues: list[Issue] = []
    by_url: dict[str, int] = {}
    by_local: dict[str, int] = {}
    types: list[Any] = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        resource = resource if isinstance(resource, dict) else {}
        rtype, rid = resource.get("resourceType"), resource.get("id")
        types.append(rtype)
        url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if isinstance(url, str):
            meta = resource.get("meta")
            version = meta.get("versionId") if isinstance(meta, dict) else None
            key = f"{url}|{version}" if version else url
            if key in by_url:
                issues.append(
                    Issue(
                        "error",
                        "invariant",
                        f"Bundle.entry[{i}].fullUrl",
                        f"bdl-7 failed: fullUrl '{url}' is also the fullUrl of entry {by_url[key]} (FullUrl must be "
                        "unique in a bundle, or else entries with the same fullUrl must have different meta.versionId)",
                        "bdl-7",
                        LAYER,
                    )
                )
            else:
                by_url[key] = i
                by_url.setdefault(url, i)
        if isinstance(rtype, str) and isinstance(rid, str):
            by_local.setdefault(f"{rtype}/{rid}", i)
    dangling: dict[str, list[str]] = {}
    for i, location, reference, targets in refs:
        target = by_url.get(reference)
        if target is None:
            target = _relative(reference, by_local)
        loc = f"Bundle.entry[{i}].resource.{location}.reference"
        if target is None:
            if not reference.startswith("#"):
                dangling.setdefault(reference, []).append(loc)
            continue
        if targets and "Resource" not in targets and types[target] not in targets:
            issues.append(
                Issue(
                    "error",
                    "structure",
                    loc,
                    f"reference points to a {types[target]} (entry {target}); this element allows {', '.join(targets)}",
                    "reference-target",
                    LAYER,
                )
            )
    for reference, locations in dangling.items():  # one missing entry is one finding, however often it is named
        others = len(locations) - 1
        also = f" (nor do the {others} other references to it)" if others > 1 else ""
        also = also or (" (nor does 1 other reference to it)" if others == 1 else "")
        issues.append(
            Issue(
                "error",
                "not-found",
                locations[0],
                f"reference '{reference}' does not resolve to an entry of this bundle{also}",
                "reference-resolves",
                LAYER,
            )
        )
    return issues


def _relative(reference: str, by_local: dict[str, int]) -> int | None:
    """``Type/id`` (or ``[base/]Type/id[/_history/v]``) against the entries' resource types and ids."""
    if reference.startswith(("urn:", "#")):
        return None
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return by_local.get("/".join(parts[-2:])) if len(parts) >= 2 else None
