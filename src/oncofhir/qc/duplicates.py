"""Uniqueness plausibility: likely duplicate patients, within a center and across centers.

Ingest already rejects a repeated record id. A patient entered twice under two ids (twice in one hospital, or
referred from one hospital to another) shows instead as two records equal on the key variables the use case
declares (``duplicates: {keys: [...], min_filled: n}`` in mapping.yaml): variables that together are near-unique
for a patient (sex, age at diagnosis, histology, receptor values, survival times...). Records with fewer than
``min_filled`` keys filled in are not compared (two sparse records are equal by blankness, not by identity); a
blank key equals only a blank key.

Every pair of a group of equal records is reported, with both record ids (local report) and both pseudonyms (what
the deposited bundles carry), so the consortium can act on the deposited copy without the ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True, slots=True)
class KeyedRecord:
    """A record's identity and key values."""

    center: str
    record_id: str
    row: int
    key: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two records equal on every key."""

    first: KeyedRecord
    second: KeyedRecord

    @property
    def scope(self) -> str:
        """``within`` one center or ``across`` two."""
        return "within" if self.first.center == self.second.center else "across"


def find_duplicates(records: Iterable[KeyedRecord]) -> list[DuplicatePair]:
    """Every pair of records with equal keys, ordered by (center, row) of the first then the second."""
    groups: dict[tuple[str, ...], list[KeyedRecord]] = {}
    for r in records:
        groups.setdefault(r.key, []).append(r)
    pairs = []
    for members in groups.values():
        if len(members) > 1:
            members.sort(key=lambda r: (r.center, r.row))
            pairs += [DuplicatePair(a, b) for a, b in combinations(members, 2)]
    pairs.sort(key=lambda p: (p.first.center, p.first.row, p.second.center, p.second.row))
    return pairs


def duplicate_rows(
    pairs: list[DuplicatePair], use_case: str, pseudonym: Callable[[str, str], str] | None
) -> list[list[object]]:
    """duplicates.tsv rows: scope, both centers, rows, record ids and pseudonyms (blank without a secret)."""
    rows: list[list[object]] = []
    for p in pairs:
        a, b = p.first, p.second
        rows.append(
            [
                p.scope,
                a.center,
                a.row,
                a.record_id,
                pseudonym(use_case, a.record_id) if pseudonym else "",
                b.center,
                b.row,
                b.record_id,
                pseudonym(use_case, b.record_id) if pseudonym else "",
            ]
        )
    return rows


DUPLICATE_HEADER = [
    "scope",
    "center",
    "row",
    "record_id",
    "pseudonym",
    "other_center",
    "other_row",
    "other_record_id",
    "other_pseudonym",
]
