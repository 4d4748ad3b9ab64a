"""The run report's data-model block: links to the IG's data-model pages and its package (issue #14).

A module of its own, apart from ``ig.pages``: it renders with the run report's templates (``oncofhir.pages``), which
the IG stage does not use, so a change to the report's templates does not rerun the IG (its code version).
"""

from __future__ import annotations

import os
from pathlib import Path

from markupsafe import Markup

from ..pages import fragment


def data_model_section(ig_dir: str | Path, report_dir: str | Path, use_cases: list[str]) -> Markup:
    """The run report's block linking each use case's data-model page and the IG package
    (``templates/data_model_section.html.j2``, placed among the report's ``sections``).

    Kept apart from the report's own rendering (src/oncofhir/report.py) on purpose: the IG is optional, and the
    block is all the report needs to know about it. Links are relative to the report's folder; in the one-file
    report (rule report_file) the pages become anchors and the package, not embedded, its name as text."""
    rel = Path(os.path.relpath(Path(ig_dir), Path(report_dir))).as_posix()
    return fragment("data_model_section.html.j2", folder=rel, use_cases=use_cases, skipped="")


def skipped_section(line: str) -> Markup:
    """The run report's data-model block when the run builds no IG: the one line saying why (ig.enabled: false, or
    auto on a machine with neither SUSHI nor npm; oncofhir.ig.settings), so the report never looks as if the
    package were merely missing."""
    return fragment("data_model_section.html.j2", skipped=line)
