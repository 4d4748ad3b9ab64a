rule qc:
    """Data-quality checks and scores (the paper's Table 2) for one center, the drill-down and the gate."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        records=f"{RESULTS}/ingest/{{use_case}}/{{center}}/records.csv",
    output:
        scores=f"{RESULTS}/qc/{{use_case}}/{{center}}/scores.tsv",
        records=f"{RESULTS}/qc/{{use_case}}/{{center}}/records.tsv",
        failures=f"{RESULTS}/qc/{{use_case}}/{{center}}/failures.tsv",
        send_back=f"{RESULTS}/qc/{{use_case}}/{{center}}/send_back.tsv",
        json=f"{RESULTS}/qc/{{use_case}}/{{center}}/qc.json",
        html=f"{RESULTS}/qc/{{use_case}}/{{center}}/report.html",
        gate=f"{RESULTS}/qc/{{use_case}}/{{center}}/gate.tsv",
        pool_stats=f"{RESULTS}/qc/{{use_case}}/{{center}}/pool_stats.json",
    log:
        f"{RESULTS}/logs/qc/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/qc/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("qc"),
        weights=json.dumps(config["qc"]["weights"], sort_keys=True),
        min_record_score=config["qc"]["min_record_score"],
        min_type_scores=json.dumps(config["qc"]["min_type_scores"], sort_keys=True),
        no_checks=config["qc"]["no_checks"],
        thresholds=json.dumps(config["qc"]["thresholds"], sort_keys=True),
        out_dir=lambda wildcards, output: os.path.dirname(output.scores),
    message:
        "Checking data quality of {wildcards.use_case}/{wildcards.center}"
    shell:
        "oncofhir --log {log:q} qc --dictionary {input.dictionary:q} --records {input.records:q}"
        " --out-dir {params.out_dir:q} --center {wildcards.center:q} --weights {params.weights:q}"
        " --min-record-score {params.min_record_score} --min-type-scores {params.min_type_scores:q}"
        " --no-checks {params.no_checks:q} --thresholds {params.thresholds:q}"


rule qc_pool:
    """Outliers against the pooled distribution, duplicate patients within and across centers, and each center's
    drift from the others: one job per use case, from its centers' summary statistics (docs/qc.md#pool-checks).
    """
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        stats=get_pool_stats,
    output:
        drift=f"{RESULTS}/qc/{{use_case}}/drift.tsv",
        outliers=f"{RESULTS}/qc/{{use_case}}/outliers.tsv",
        duplicates=f"{RESULTS}/qc/{{use_case}}/duplicates.tsv",
        json=f"{RESULTS}/qc/{{use_case}}/pool.json",
    log:
        f"{RESULTS}/logs/qc_pool/{{use_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/qc_pool/{{use_case}}.tsv"
    conda:
        ENV
    params:
        code=code_version("qc_pool"),
        settings=json.dumps(QC_POOL, sort_keys=True),
        demo_secret="" if config["deposit"]["demo_keys"] else "--refuse-demo-secret",
        out_dir=lambda wildcards, output: os.path.dirname(output.json),
    message:
        "Comparing the centers of {wildcards.use_case} (outliers, duplicates, drift)"
    shell:
        "oncofhir --log {log:q} qc-pool --dictionary {input.dictionary:q} --stats {input.stats:q}"
        " --out-dir {params.out_dir:q} --settings {params.settings:q} --pseudonyms {params.demo_secret}"


rule qc_index:
    """One page with the data-quality scores of every center and use case, linking to each center's report, with
    each use case's drift heat map, outliers and duplicates."""
    input:
        qc=per_center(f"{RESULTS}/qc/{{use_case}}/{{center}}/qc.json"),
        pools=[f"{RESULTS}/qc/{u}/pool.json" for u in USE_CASES],
    output:
        f"{RESULTS}/qc/index.html",
    log:
        f"{RESULTS}/logs/qc_index.log",
    benchmark:
        f"{RESULTS}/benchmarks/qc_index.tsv"
    conda:
        ENV
    params:
        code=code_version("qc_index"),
        min_center_score=config["qc"]["min_center_score"],
    message:
        "Writing the combined data-quality page"
    script:
        "../scripts/qc_index.py"
