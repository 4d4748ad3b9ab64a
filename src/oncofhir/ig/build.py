"""``oncofhir ig``: generate the IG sources from compiled dictionaries and, optionally, compile the package."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..dictionary.compiled import load_compiled
from .generate import generate
from .install import ensure_sushi
from .sushi import compile_fsh, find_sushi, pack


def build_ig(
    dictionaries: Sequence[str | Path],
    out_dir: str | Path,
    *,
    canonical: str,
    identifier_system: str,
    package: str | Path | None = None,
    sushi_home: str | Path | None = None,
    sushi_log: str | Path | None = None,
    install_sushi: bool = False,
) -> dict[str, Any]:
    """Write the FSH (and pages); with ``package``, compile with SUSHI and pack. Returns counts and timings.

    SUSHI is looked up (with ``install_sushi``, installed with npm on first use: the workflow's way) before anything
    is written, so a machine without it fails in one line, at once."""
    sushi = None
    if package:
        start = time.perf_counter()
        sushi = ensure_sushi(sushi_home) if install_sushi else find_sushi(sushi_home)
        setup_seconds = round(time.perf_counter() - start, 1)
    dicts = [load_compiled(p) for p in dictionaries]
    start = time.perf_counter()
    result = generate(dicts, out_dir, canonical, identifier_system)
    info: dict[str, Any] = {
        "use_cases": sorted(result),
        **({"sushi_setup_seconds": setup_seconds} if package else {}),
        "valuesets": sum(len(r.valuesets) for r in result.values()),
        "generate_seconds": round(time.perf_counter() - start, 2),
    }
    if package and sushi is not None:
        info |= compile_fsh(out_dir, sushi, sushi_log)
        info["resources"] = pack(out_dir, package)
    return info
