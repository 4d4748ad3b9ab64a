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
        # linked from the report's "send back" column: made (by the qc rule) whenever the report is
        send_back=per_center(f"{RESULTS}/qc/{{use_case}}/{{center}}/send_back.tsv"),
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
        min_center_score=config["qc"]["min_center_score"],
    message:
        "Writing the run summary and report"
    script:
        "../scripts/run_summary.py"


rule report_site:
    """The run report, the QC pages and every list they link to, gathered as one folder that `snakemake --report`
    embeds (htmlindex): its links work there as under results/."""
    input:
        get_report_site_files(),
    output:
        report(
            directory(f"{RESULTS}/report/site"),
            htmlindex="index.html",
            caption="../report/run_report.rst",
            category="Run report",
        ),
    log:
        f"{RESULTS}/logs/report_site.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_site.tsv"
    conda:
        ENV
    params:
        # the results folder: the site's files sit at the same paths below it as below results/
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
    message:
        "Gathering the report pages for snakemake --report"
    script:
        "../scripts/report_site.py"
