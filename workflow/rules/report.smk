rule run_summary:
    """Per-center reconciliation: rows in, records, rejects by stage, bundles, resources by type."""
    input:
        ingest=per_center(f"{RESULTS}/ingest/{{use_case}}/{{center}}/report.json"),
        fhir=per_center(f"{RESULTS}/fhir/{{use_case}}/{{center}}.summary.json"),
        qc=per_center(f"{RESULTS}/qc/{{use_case}}/{{center}}/qc.json"),
    output:
        f"{RESULTS}/report/run_summary.tsv",
    log:
        f"{RESULTS}/logs/run_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/run_summary.tsv"
    conda:
        ENV
    message:
        "Writing the run summary"
    script:
        "../scripts/run_summary.py"
