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
        roundtrips=get_roundtrips(),
        privacy=get_privacy_reports(),
        # linked from the report's "send back" column: made (by the qc rule) whenever the report is
        send_back=per_center(f"{RESULTS}/qc/{{use_case}}/{{center}}/send_back.tsv"),
        ig=get_ig_package(),
        server=get_server_reports(),
    output:
        tsv=f"{RESULTS}/report/run_summary.tsv",
        html=f"{RESULTS}/report/index.html",
    log:
        f"{RESULTS}/logs/run_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/run_summary.tsv"
    conda:
        ENV
    params:
        code=code_version("run_summary"),
        min_center_score=config["qc"]["min_center_score"],
        use_cases=USE_CASES,
        ig_line="" if IG.build else IG.line,
    message:
        "Writing the run summary and report"
    script:
        "../scripts/run_summary.py"


rule report_file:
    """The run report, every center's QC page and the lists they link to as ONE self-contained HTML file, links
    rewritten to in-file anchors: what `snakemake --report report.html` (or report.zip) embeds.
    """
    input:
        pages=get_report_pages(),
        lists=get_report_lists(),
        kept=get_report_kept(),
    output:
        report(
            f"{RESULTS}/report/report.html",
            caption="../report/run_report.rst",
            category="Run report",
        ),
    log:
        f"{RESULTS}/logs/report_file.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_file.tsv"
    conda:
        ENV
    params:
        code=code_version("report_file"),
        # the results folder: sections are named by their path below it
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
    message:
        "Writing the run report and QC pages as one file for snakemake --report"
    script:
        "../scripts/report_file.py"
