"""A center's collection bundles as FHIR transaction bundles: each resource PUT at its own id.

The FHIR stage gives every resource a deterministic id (a UUIDv5 of the pseudonym) and a ``urn:uuid:<id>`` fullUrl,
and references point to those fullUrls. A transaction entry ``PUT <type>/<id>`` with the same fullUrl makes the
server store the resource at that id and rewrite the references to ``<type>/<id>``: the same data loaded twice
lands at the same ids, so a reload creates nothing and (on servers that detect unchanged content, such as HAPI)
makes no new version. Several patients' bundles go into one transaction (``batch``), all or nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson


class BadBundle(ValueError):
    """An NDJSON line that is not a collection Bundle of resources with ids (the message says what is wrong)."""


@dataclass
class Chunk:
    """Up to ``batch`` patient bundles of one center, as one transaction, with what they hold."""

    lines: list[int] = field(default_factory=list)
    bundle_ids: list[str] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    resources: Counter[str] = field(default_factory=Counter)
    profiles: Counter[tuple[str, str]] = field(default_factory=Counter)
    searches: Counter[int] = field(default_factory=Counter)

    def body(self) -> bytes:
        """The transaction Bundle, compact JSON."""
        return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": self.entries})


def parse_bundle(line: bytes) -> dict[str, Any]:
    """One NDJSON line as a collection Bundle whose entries all hold a resource with a type and an id."""
    try:
        bundle = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadBundle(f"not JSON ({exc})") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadBundle("not a FHIR Bundle")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise BadBundle("a Bundle without entries")
    for number, entry in enumerate(entries, 1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not resource.get("resourceType") or not resource.get("id"):
            raise BadBundle(f"entry {number} has no resource with a resourceType and an id")
    return bundle


def transaction_entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The bundle's entries as transaction entries: ``PUT <type>/<id>``, fullUrl kept (references point to it)."""
    out = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        url = f"{resource['resourceType']}/{resource['id']}"
        out.append(
            {
                "fullUrl": entry.get("fullUrl") or f"urn:uuid:{resource['id']}",
                "resource": resource,
                "request": {"method": "PUT", "url": url},
            }
        )
    return out
