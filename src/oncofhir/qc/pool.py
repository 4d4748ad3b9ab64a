"""The use case's pool step: outliers, duplicate patients and drift over all its centers at once.

One job per use case (rule ``qc_pool``), reading each center's ``pool_stats.json`` (:mod:`oncofhir.qc.poolstats`,
written by that center's QC job): a changed center reruns its own QC and this step, nothing else. Writes into
``results/qc/<use_case>/``, every file 0600 (they hold values and record ids; none is deposited):

- ``drift.tsv``: per (center, variable), the statistic against the other centers, its p-value, the counts, the flag;
- ``outliers.tsv``: per (center, variable, value), the numbers far from the pooled median and the rare codes;
- ``duplicates.tsv``: every pair of likely duplicate records, with both record ids and both pseudonyms;
- ``pool.json``: per center the counts (outliers, duplicates, drift flags) the QC index shows and may score, and
  per variable the binned distributions of each center and of the others behind the heat map.

Each check has a weight (``qc.pool.weights``, default 0): reported, not scored, unless configured; the QC index
then adds its (fail, pass) counts to the center's and the use case's score (docs/qc.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..dictionary.compiled import load_compiled
from ..errors import ConfigError, OncofhirError
from ..io_utils import private_dir, write_private
from ..tsv import write_tsv
from .drift import categorical_drift, flagged, numeric_drift
from .duplicates import DUPLICATE_HEADER, KeyedRecord, duplicate_rows, find_duplicates
from .outliers import rare_codes, robust_scale
from .poolstats import CODE, read_stats

FORMAT = 1
POOL_TYPES = ("outlier", "duplicate", "drift")
OUTPUTS = ("drift.tsv", "outliers.tsv", "duplicates.tsv", "pool.json")
DRIFT_HEADER = ["center", "variable", "statistic", "value", "p_value", "n", "n_other", "flag"]
OUTLIER_HEADER = ["center", "variable", "kind", "value", "records", "pooled_median", "robust_z", "pooled_share"]
BINS = 10


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Thresholds and weights of the pool checks (config ``qc.pool``; docs/qc.md has the defaults' reasons)."""

    max_robust_z: float = 5.0
    rare_share: float = 0.001
    categorical: float = 0.2
    numeric: float = 0.3
    alpha: float = 0.0001
    min_n: int = 20
    weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(POOL_TYPES, 0.0))


def _number(value: Any, key: str, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > low if low_open else value >= low) and value <= high:
        return float(value)
    bound = f"> {low:g}" if low_open else f">= {low:g}"
    bound += f" and <= {high:g}" if math.isfinite(high) else ""
    raise ConfigError(f"qc.pool.{key}: {value!r} is not a number {bound} (config/README.md)")


def pool_settings(config: Mapping[str, Any] | None) -> PoolSettings:
    """Check ``qc.pool`` (as in config.yaml) and make settings; a bad value is a ConfigError naming its key."""
    config = config or {}
    default = PoolSettings()
    known = {"outliers", "drift", "weights"}
    for key in config:
        if key not in known:
            raise ConfigError(f"qc.pool: unknown key '{key}' (known: {', '.join(sorted(known))})")
    out = config.get("outliers") or {}
    drift = config.get("drift") or {}
    weights = dict(default.weights)
    for name, value in (config.get("weights") or {}).items():
        if name not in POOL_TYPES:
            raise ConfigError(f"qc.pool.weights: unknown check '{name}' (known: {', '.join(POOL_TYPES)})")
        weights[name] = _number(value, f"weights.{name}", low=0)
    min_n = drift.get("min_n", default.min_n)
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1:
        raise ConfigError(f"qc.pool.drift.min_n: {min_n!r} is not an integer >= 1 (config/README.md)")
    return PoolSettings(
        max_robust_z=_number(
            out.get("max_robust_z", default.max_robust_z), "outliers.max_robust_z", low=0, low_open=True
        ),
        rare_share=_number(out.get("rare_share", default.rare_share), "outliers.rare_share", low=0, high=1),
        categorical=_number(
            drift.get("categorical", default.categorical), "drift.categorical", low=0, high=1, low_open=True
        ),
        numeric=_number(drift.get("numeric", default.numeric), "drift.numeric", low=0, high=1, low_open=True),
        alpha=_number(drift.get("alpha", default.alpha), "drift.alpha", low=0, high=1, low_open=True),
        min_n=min_n,
        weights=weights,
    )


def _fmt(x: float, digits: int = 4) -> str:
    return "" if math.isnan(x) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.3g}"


def _edges(values: np.ndarray, counts: np.ndarray, scale: Any, settings: PoolSettings) -> list[float]:
    """Display bins of a number: equal widths over the pooled non-outlier range (outliers fall in the end bins)."""
    inside = values[counts > 0]
    if scale is not None and scale.scale > 0:
        inside = inside[scale.z(inside) <= settings.max_robust_z]
    lo, hi = (float(inside.min()), float(inside.max())) if len(inside) else (0.0, 0.0)
    if hi <= lo:
        return [lo, lo]
    return [lo + (hi - lo) * k / BINS for k in range(BINS + 1)]


def _binned(values: np.ndarray, counts: np.ndarray, edges: list[float]) -> list[int]:
    if len(edges) == 2 and edges[0] == edges[1]:
        return [int(counts.sum())]
    which = np.clip(np.searchsorted(np.asarray(edges[1:-1]), values, side="right"), 0, len(edges) - 2)
    return [int(x) for x in np.bincount(which, weights=counts, minlength=len(edges) - 1)]


def assess_pool(
    stats: Sequence[Mapping[str, Any]],
    labels: Mapping[str, Mapping[str, str]],
    field_labels: Mapping[str, str],
    settings: PoolSettings,
) -> dict[str, Any]:
    """Outliers, duplicates and drift over every center's statistics; returns the tables' rows and pool.json."""
    centers = [s["center"] for s in stats]
    per_center = {
        c: {
            "records": s["records"],
            "outlier": [0, 0],
            "duplicate": [0, 0],
            "drift": [0, 0],
            "duplicate_pairs": {"within": 0, "across": 0},
        }
        for c, s in zip(centers, stats, strict=True)
    }
    names = list(dict.fromkeys(n for s in stats for n in s["variables"]))
    drift_rows: list[list[object]] = []
    outlier_rows: list[list[object]] = []
    variables = []
    for name in names:
        kind = next(s["variables"][name]["kind"] for s in stats if name in s["variables"])
        if kind == CODE:
            codes = list(labels.get(name, {})) or sorted(
                {c for s in stats for c in s["variables"].get(name, {}).get("counts", {})}
            )
            matrix = np.array(
                [[s["variables"].get(name, {}).get("counts", {}).get(c, 0) for c in codes] for s in stats], dtype=float
            ).reshape(len(stats), len(codes))
            pooled = matrix.sum(axis=0)
            if pooled.sum() == 0:
                continue
            rare = rare_codes(dict(zip(codes, pooled.astype(int).tolist(), strict=True)), settings.rare_share)
            rare_mask = np.array([c in rare for c in codes], dtype=bool)
            share = pooled / pooled.sum()
            for i, c in enumerate(centers):
                row = matrix[i]
                fail = int(row[rare_mask].sum())
                per_center[c]["outlier"][0] += fail
                per_center[c]["outlier"][1] += int(row.sum()) - fail
                for k in np.flatnonzero(rare_mask & (row > 0)).tolist():
                    outlier_rows.append([c, name, "rare code", codes[k], int(row[k]), "", "", f"{share[k]:.6f}"])
            categories = [f"{c} = {labels.get(name, {}).get(c, c)}" for c in codes]
            results = [categorical_drift(matrix[i], pooled - matrix[i]) for i in range(len(centers))]
            shown = [
                (matrix[i].astype(int).tolist(), (pooled - matrix[i]).astype(int).tolist()) for i in range(len(centers))
            ]
            threshold = settings.categorical
        else:
            union = np.array(
                sorted({x for s in stats for x in s["variables"].get(name, {}).get("values", [])}), dtype=float
            )
            matrix = np.zeros((len(stats), len(union)))
            for i, s in enumerate(stats):
                v = s["variables"].get(name)
                if v and v["values"]:
                    matrix[i, np.searchsorted(union, np.asarray(v["values"], dtype=float))] = v["counts"]
            pooled = matrix.sum(axis=0)
            if pooled.sum() == 0:
                continue
            scale = robust_scale(union, pooled)
            z = scale.z(union) if scale is not None else np.zeros(len(union))
            mask = z > settings.max_robust_z
            for i, c in enumerate(centers):
                row = matrix[i]
                fail = int(row[mask].sum())
                per_center[c]["outlier"][0] += fail
                per_center[c]["outlier"][1] += int(row.sum()) - fail
                for k in np.flatnonzero(mask & (row > 0)).tolist():
                    assert scale is not None
                    outlier_rows.append(
                        [c, name, "number", f"{union[k]:g}", int(row[k]), f"{scale.median:g}", f"{z[k]:.2f}", ""]
                    )
            edges = _edges(union, pooled, scale, settings)
            categories = (
                [f"{edges[0]:g}"]
                if len(edges) == 2
                else [f"{edges[k]:g}–{edges[k + 1]:g}" for k in range(len(edges) - 1)]
            )
            results = [numeric_drift(union, matrix[i], pooled - matrix[i]) for i in range(len(centers))]
            shown = [
                (_binned(union, matrix[i], edges), _binned(union, pooled - matrix[i], edges))
                for i in range(len(centers))
            ]
            threshold = settings.numeric
        cells = {}
        for i, c in enumerate(centers):
            r = results[i]
            flag = flagged(r, threshold, settings.alpha, settings.min_n)
            if r.n >= settings.min_n and r.n_other >= settings.min_n and not math.isnan(r.value):
                per_center[c]["drift"][0 if flag else 1] += 1
            drift_rows.append(
                [c, name, r.statistic, _fmt(r.value), _p(r.p_value), r.n, r.n_other, "yes" if flag else "no"]
            )
            cells[c] = {
                "value": None if math.isnan(r.value) else round(r.value, 4),
                "p_value": None if math.isnan(r.p_value) else float(f"{r.p_value:.3g}"),
                "n": r.n,
                "n_other": r.n_other,
                "flag": flag,
                "center_counts": shown[i][0],
                "other_counts": shown[i][1],
            }
        variables.append(
            {
                "name": name,
                "label": field_labels.get(name, name),
                "kind": kind,
                "statistic": results[0].statistic,
                "threshold": threshold,
                "categories": categories,
                "cells": cells,
            }
        )
    keyed = [
        KeyedRecord(s["center"], str(rid), int(row), tuple(key))
        for s in stats
        for rid, row, key in s["duplicates"]["records"]
    ]
    pairs = find_duplicates(keyed)
    involved: dict[str, set[str]] = {c: set() for c in centers}
    for p in pairs:
        involved[p.first.center].add(p.first.record_id)
        involved[p.second.center].add(p.second.record_id)
        per_center[p.first.center]["duplicate_pairs"][p.scope] += 1
        if p.scope == "across":
            per_center[p.second.center]["duplicate_pairs"]["across"] += 1
    compared = {c: 0 for c in centers}
    for r in keyed:
        compared[r.center] += 1
    for c in centers:
        per_center[c]["duplicate"] = [len(involved[c]), compared[c] - len(involved[c])]
    return {
        "pairs": pairs,
        "drift_rows": drift_rows,
        "outlier_rows": outlier_rows,
        "summary": {
            "format": FORMAT,
            "centers": centers,
            "keys": stats[0]["duplicates"]["keys"] if stats else [],
            "settings": {
                "max_robust_z": settings.max_robust_z,
                "rare_share": settings.rare_share,
                "categorical": settings.categorical,
                "numeric": settings.numeric,
                "alpha": settings.alpha,
                "min_n": settings.min_n,
                "weights": settings.weights,
            },
            "per_center": per_center,
            "variables": variables,
        },
    }


def stage_qc_pool(
    compiled_json: str | Path,
    stats_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    settings: PoolSettings | None = None,
    pseudonym: Callable[[str, str], str] | None = None,
) -> dict[str, Any]:
    """Run the pool checks of one use case over its centers' ``pool_stats.json``; write :data:`OUTPUTS`.

    ``pseudonym(use_case, record_id)`` fills the duplicates' pseudonym columns (the workflow passes the deposit's
    pseudonymiser); without it they are blank.
    """
    settings = settings or PoolSettings()
    dd = load_compiled(compiled_json)
    stats = [read_stats(p) for p in stats_paths]
    for path, s in zip(stats_paths, stats, strict=True):
        if s["use_case"] != dd.use_case:
            raise OncofhirError(f"pool statistics of use case {s['use_case']}, not {dd.use_case}", path=str(path))
    stats.sort(key=lambda s: s["center"])
    labels = {f.name: f.choices for f in dd.fields.values() if f.choices}
    result = assess_pool(stats, labels, {f.name: f.label for f in dd.fields.values()}, settings)
    out = private_dir(out_dir)
    write_tsv(out / "drift.tsv", DRIFT_HEADER, result["drift_rows"])
    write_tsv(out / "outliers.tsv", OUTLIER_HEADER, result["outlier_rows"])
    write_tsv(out / "duplicates.tsv", DUPLICATE_HEADER, duplicate_rows(result["pairs"], dd.use_case, pseudonym))
    summary = {"use_case": dd.use_case, "dictionary_version": dd.version, **result["summary"]}
    write_private(out / "pool.json", (json.dumps(summary, separators=(",", ":")) + "\n").encode("utf-8"))
    return {
        "use_case": dd.use_case,
        "centers": len(stats),
        "outliers": sum(c["outlier"][0] for c in summary["per_center"].values()),
        "duplicate_pairs": len(result["pairs"]),
        "drift_flags": sum(c["drift"][0] for c in summary["per_center"].values()),
    }
