rule fhir:
    """One FHIR R4B collection Bundle per patient, identified by pseudonym, in the center's NDJSON; index, rejects.

    The pseudonym secret is read from the environment inside the job, never passed as a parameter (parameters are
    stored in Snakemake's metadata)."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        records=f"{RESULTS}/ingest/{{use_case}}/{{center}}/records.csv",
        ingest_rejects=f"{RESULTS}/ingest/{{use_case}}/{{center}}/rejects.tsv",
        ingest_report=f"{RESULTS}/ingest/{{use_case}}/{{center}}/report.json",
        gate=f"{RESULTS}/qc/{{use_case}}/{{center}}/gate.tsv",
    output:
        ndjson=plaintext(f"{RESULTS}/fhir/{{use_case}}/{{center}}.ndjson"),
        index=f"{RESULTS}/fhir/{{use_case}}/{{center}}.index.tsv",
        summary=f"{RESULTS}/fhir/{{use_case}}/{{center}}.summary.json",
        rejects=f"{RESULTS}/rejects/{{use_case}}/{{center}}.tsv",
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
    message:
        "Building FHIR bundles for {wildcards.use_case}/{wildcards.center}"
    shell:
        # the CLI reads ONCOFHIR_PSEUDONYM_KEY from the environment itself (never a parameter or an argument)
        "oncofhir --log {log:q} fhir --dictionary {input.dictionary:q} --records {input.records:q}"
        " --ingest-rejects {input.ingest_rejects:q} --ingest-report {input.ingest_report:q} --gate {input.gate:q}"
        " --ndjson {output.ndjson:q} --index {output.index:q} --rejects {output.rejects:q}"
        " --summary {output.summary:q} --identifier-system {params.identifier_system:q} {params.demo_secret}"
        " {params.claim_profiles}"


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
