rule run_summary:
    """Per-center reconciliation, QC, validation and deposit: one TSV row and one line of the run report each."""
    input:
        ingest=per_center(f"{RESULTS}/ingest/{{use_case}}/{{center}}/report.json"),
        fhir=per_center(f"{RESULTS}/fhir/{{use_case}}/{{center}}.summary.json"),
        qc=per_center(f"{RESULTS}/qc/{{use_case}}/{{center}}/qc.json"),
        validation=per_center(
            f"{RESULTS}/validation/{{use_case}}/{{center}}/summary.json"
        ),
        manifests=get_center_manifests(),
        ig=get_ig_package(),
    output:
        tsv=f"{RESULTS}/report/run_summary.tsv",
        html=report(
            f"{RESULTS}/report/index.html",
            caption="../report/run_report.rst",
            category="Run",
        ),
    log:
        f"{RESULTS}/logs/run_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/run_summary.tsv"
    conda:
        ENV
    params:
        use_cases=USE_CASES,
    message:
        "Writing the run summary and report"
    script:
        "../scripts/run_summary.py"
