"""k-anonymity, l-diversity, the classes below k, what drives them and which generalisation would reach k.

Computed from class counts (:mod:`.counts`), never from rows: a use case of 20,000 records has at most a few
thousand classes, so every measure below, including the what-if generalisations, takes milliseconds.

Definitions: an equivalence class is the set of records sharing every quasi-identifier value (a missing value is
a value of its own); k is the size of the smallest class; l is the smallest number of distinct sensitive values in
a class (distinct l-diversity). A generalisation replaces a numeric quasi-identifier by its band (``60-64`` for a
5-year band); suppressing an attribute removes it from the quasi-identifiers.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

Key = tuple[str, ...]

#: Band widths tried for each numeric quasi-identifier, narrowest first.
BANDS = (5, 10, 20)
#: Smallest classes listed in the report.
SHOWN = 10


def classes(counts: Counter[Key], width: int) -> Counter[Key]:
    """Class sizes over the first ``width`` columns of the count keys (the quasi-identifiers)."""
    sizes: Counter[Key] = Counter()
    for key, n in counts.items():
        sizes[key[:width]] += n
    return sizes


def below(sizes: Counter[Key], k: int) -> tuple[int, int]:
    """(records, classes) in classes smaller than k."""
    small = [n for n in sizes.values() if n < k]
    return sum(small), len(small)


def band(value: str, width: int) -> str:
    """The band of a numeric value (``62`` -> ``60-64`` for width 5); a missing or non-numeric value stays."""
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    low = int(number // width) * width
    return f"{low}-{low + width - 1}"


def _project(counts: Counter[Key], transform: Callable[[Key], Key]) -> Counter[Key]:
    out: Counter[Key] = Counter()
    for key, n in counts.items():
        out[transform(key)] += n
    return out


def _summary(sizes: Counter[Key], k: int) -> dict[str, int]:
    records, small = below(sizes, k)
    return {"k": min(sizes.values(), default=0), "records_below_k": records, "classes_below_k": small}


def assess(counts: Counter[Key], qis: list[str], sensitive: str | None, k: int, numeric: set[str]) -> dict[str, Any]:
    """Every measure of the report for one use case; ``counts`` keys are (qi values..., [sensitive value])."""
    width = len(qis)
    sizes = classes(counts, width)
    total = sum(sizes.values())
    result: dict[str, Any] = {
        "quasi_identifiers": qis,
        "sensitive": sensitive,
        "k_required": k,
        "records": total,
        "classes": len(sizes),
        **_summary(sizes, k),
    }
    result["meets_k"] = total == 0 or result["k"] >= k
    diversity: dict[Key, set[str]] = defaultdict(set)
    if sensitive:
        for key in counts:
            diversity[key[:width]].add(key[width])
        result["l"] = min((len(v) for v in diversity.values()), default=0)
        result["classes_with_one_sensitive_value"] = sum(1 for v in diversity.values() if len(v) == 1)
    else:
        result["l"] = None
    # Which attributes drive the small classes: the risk with each one suppressed in turn.
    result["without_attribute"] = {
        qi: _summary(classes(_project(counts, lambda key, i=i: key[:i] + key[i + 1 : width]), width - 1), k)
        for i, qi in enumerate(qis)
    }
    result["smallest_classes"] = [
        _class_entry(key, n, qis, sizes, diversity, k)
        for key, n in sorted(sizes.items(), key=lambda item: (item[1], item[0]))[:SHOWN]
        if n < k
    ]
    result["generalisations"] = _generalisations(counts, qis, numeric, k)
    return result


def _class_entry(
    key: Key, n: int, qis: list[str], sizes: Counter[Key], diversity: dict[Key, set[str]], k: int
) -> dict[str, Any]:
    """One small class: its values, size, and the attributes whose suppression alone brings it to k."""
    merged = {
        qi: sum(m for other, m in sizes.items() if other[:i] + other[i + 1 :] == key[:i] + key[i + 1 :])
        for i, qi in enumerate(qis)
    }
    return {
        "values": dict(zip(qis, key, strict=True)),
        "records": n,
        "sensitive_values": len(diversity[key]) if diversity else None,
        "drivers": [qi for qi, m in merged.items() if m >= k],
        "size_without": merged,
    }


def _generalisations(counts: Counter[Key], qis: list[str], numeric: set[str], k: int) -> list[dict[str, Any]]:
    """Band widths for each numeric quasi-identifier (the others unchanged), then for all of them together."""
    positions = [i for i, qi in enumerate(qis) if qi in numeric]
    options: list[dict[str, Any]] = []
    for targets in [[i] for i in positions] + ([positions] if len(positions) > 1 else []):
        for width in BANDS:
            banded = _project(
                counts, lambda key, t=targets, w=width: tuple(band(v, w) if j in t else v for j, v in enumerate(key))
            )
            summary = _summary(classes(banded, len(qis)), k)
            options.append(
                {"attributes": [qis[i] for i in targets], "band": width, **summary, "reaches_k": summary["k"] >= k}
            )
    return options
