rule fhir:
    """One FHIR R4B collection Bundle per patient, identified by pseudonym, in the center's NDJSON; index, rejects;
    and the analysis tables: the use case's views over each bundle as it is written, into Parquet (plaintext,
    owner-only), with the round-trip proof (docs/tables.md); and the privacy counts of the deposited records. In this
    job, not jobs of their own, because a job's start-up and Snakemake's work per job cost more than either at a
    center's scale.

    The pseudonym secret is read from the environment inside the job, never passed as a parameter (parameters are
    stored in Snakemake's metadata)."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        views=f"{RESULTS}/views/{{use_case}}",
        records=f"{RESULTS}/ingest/{{use_case}}/{{center}}/records.csv",
        ingest_rejects=f"{RESULTS}/ingest/{{use_case}}/{{center}}/rejects.tsv",
        ingest_report=f"{RESULTS}/ingest/{{use_case}}/{{center}}/report.json",
        gate=f"{RESULTS}/qc/{{use_case}}/{{center}}/gate.tsv",
    output:
        ndjson=plaintext(f"{RESULTS}/fhir/{{use_case}}/{{center}}.ndjson"),
        index=f"{RESULTS}/fhir/{{use_case}}/{{center}}.index.tsv",
        summary=f"{RESULTS}/fhir/{{use_case}}/{{center}}.summary.json",
        rejects=f"{RESULTS}/rejects/{{use_case}}/{{center}}.tsv",
        tables=plaintext(directory(f"{RESULTS}/tables/{{use_case}}/{{center}}")),
        roundtrip=f"{RESULTS}/roundtrip/{{use_case}}/{{center}}.json",
        roundtrip_tsv=f"{RESULTS}/roundtrip/{{use_case}}/{{center}}.tsv",
        # the deposited records per quasi-identifier combination (docs/provenance.md#re-identification-risk)
        privacy_counts=f"{RESULTS}/privacy/{{use_case}}/{{center}}.counts.tsv",
    log:
        f"{RESULTS}/logs/fhir/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fhir/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("fhir"),
        identifier_system=config["fhir"]["identifier_system"],
        demo_secret="" if config["deposit"]["demo_keys"] else "--refuse-demo-secret",
        claim_profiles=(
            f"--claim-profiles {shlex.quote(config['ig']['canonical'])}"
            if IG.claim_profiles  # fhir.claim_profiles, when this run builds the IG
            else ""
        ),
        tables_root=get_center_tables_root,
    message:
        "Building FHIR bundles and tables for {wildcards.use_case}/{wildcards.center}"
    shell:
        # the CLI reads ONCOFHIR_PSEUDONYM_KEY from the environment itself (never a parameter or an argument)
        "oncofhir --log {log:q} fhir --dictionary {input.dictionary:q} --records {input.records:q}"
        " --ingest-rejects {input.ingest_rejects:q} --ingest-report {input.ingest_report:q} --gate {input.gate:q}"
        " --ndjson {output.ndjson:q} --index {output.index:q} --rejects {output.rejects:q}"
        " --summary {output.summary:q} --identifier-system {params.identifier_system:q} {params.demo_secret}"
        " {params.claim_profiles} --views-dir {input.views:q} --tables-dir {output.tables:q}"
        " --center {wildcards.center:q} --tables-root {params.tables_root:q}"
        " --roundtrip-json {output.roundtrip:q} --roundtrip-tsv {output.roundtrip_tsv:q}"
        " --privacy-counts {output.privacy_counts:q}"


rule bundle_files:
    """One <pseudonym>.json per patient from the center's NDJSON: for the HL7 validator, or to keep the plaintext."""
    input:
        ndjson=f"{RESULTS}/fhir/{{use_case}}/{{center}}.ndjson",
        index=f"{RESULTS}/fhir/{{use_case}}/{{center}}.index.tsv",
    output:
        plaintext(directory(f"{RESULTS}/fhir/{{use_case}}/{{center}}")),
    log:
        f"{RESULTS}/logs/bundle_files/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/bundle_files/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("bundle_files"),
    message:
        "Writing one bundle file per patient of {wildcards.use_case}/{wildcards.center}"
    script:
        "../scripts/bundle_files.py"
