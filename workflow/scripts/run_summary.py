"""Snakemake adapter: aggregate the per-center reports into the run summary (TSV) and the run report (HTML)."""

import os

from oncofhir.report import CenterReports, write_run_summary
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
inp = sm.input
manifests = list(inp.manifests) or [None] * len(inp.ingest)
centers = [CenterReports(*files) for files in zip(inp.ingest, inp.fhir, inp.qc, inp.validation, manifests, strict=True)]


def _summary():
    line = write_run_summary(centers, sm.output.tsv, sm.output.html)
    if inp.ig:  # ig.enabled: one line linking the data-model pages (results/ig/<use case>.html)
        from oncofhir.ig.pages import link_from_run_report

        link_from_run_report(sm.output.html, os.path.dirname(inp.ig[0]), sm.params.use_cases)
    return line


run(sm, _summary)
