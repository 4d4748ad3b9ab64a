"""Snakemake adapter: aggregate the per-center reports into the run summary (TSV) and the run report (HTML)."""

from oncofhir.report import CenterReports, write_run_summary
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
inp = sm.input
manifests = list(inp.manifests) or [None] * len(inp.ingest)
centers = [CenterReports(*files) for files in zip(inp.ingest, inp.fhir, inp.qc, inp.validation, manifests, strict=True)]
run(sm, lambda: write_run_summary(centers, sm.output.tsv, sm.output.html, min_score=sm.params.min_center_score))
