"""Snakemake adapter: aggregate the per-center reports into the run summary (TSV) and the run report (HTML)."""

import os

from oncofhir.privacy.html import privacy_section
from oncofhir.report import CenterReports, write_run_summary
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
inp = sm.input
manifests = list(inp.manifests) or [None] * len(inp.ingest)
files = zip(inp.ingest, inp.fhir, inp.qc, inp.validation, manifests, inp.roundtrips, strict=True)
centers = [CenterReports(*center) for center in files]
sections = [privacy_section(list(inp.privacy))]
if inp.ig:  # the IG is built: links to the data-model pages (results/ig/<use case>.html) and the IG package
    from oncofhir.ig.report_section import data_model_section

    sections.append(
        data_model_section(os.path.dirname(inp.ig[0]), os.path.dirname(sm.output.html), sm.params.use_cases)
    )
elif sm.params.ig_line:  # not built: why (ig.enabled false, or auto without SUSHI and npm)
    from oncofhir.ig.report_section import skipped_section

    sections.append(skipped_section(sm.params.ig_line))
if inp.server:  # fhir_server.enabled: the centers' load reports, then the query check (results/server/verify.json)
    from oncofhir.server.html import server_section

    sections.append(server_section(list(inp.server)[:-1], inp.server[-1]))
run(
    sm,
    lambda: write_run_summary(centers, sm.output.tsv, sm.output.html, sections, min_score=sm.params.min_center_score),
)
