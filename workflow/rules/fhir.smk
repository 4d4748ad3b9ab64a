rule fhir:
    """One FHIR R4B collection Bundle per patient, named by pseudonym; the center's NDJSON, index and rejects.

    The pseudonym secret is read from the environment inside the job, never passed as a parameter (parameters are
    stored in Snakemake's metadata)."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        records=f"{RESULTS}/ingest/{{use_case}}/{{center}}/records.csv",
        ingest_rejects=f"{RESULTS}/ingest/{{use_case}}/{{center}}/rejects.tsv",
        ingest_report=f"{RESULTS}/ingest/{{use_case}}/{{center}}/report.json",
        gate=f"{RESULTS}/qc/{{use_case}}/{{center}}/gate.tsv",
    output:
        bundles=plaintext(directory(f"{RESULTS}/fhir/{{use_case}}/{{center}}")),
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
        identifier_system=config["fhir"]["identifier_system"],
        allow_demo_secret=config["deposit"]["demo_keys"],
    message:
        "Building FHIR bundles for {wildcards.use_case}/{wildcards.center}"
    script:
        "../scripts/fhir.py"
