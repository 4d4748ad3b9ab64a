# Re-identification risk (docs/provenance.md#re-identification-risk): per center, the deposited records counted per
# quasi-identifier combination (no record id); per use case, k-anonymity, l-diversity and the release decision.


localrules:
    privacy,


rule privacy_counts:
    """Count a center's deposited records per combination of the use case's quasi-identifiers (mapping.yaml)."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        records=f"{RESULTS}/ingest/{{use_case}}/{{center}}/records.csv",
        index=f"{RESULTS}/fhir/{{use_case}}/{{center}}.index.tsv",
    output:
        f"{RESULTS}/privacy/{{use_case}}/{{center}}.counts.tsv",
    log:
        f"{RESULTS}/logs/privacy_counts/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/privacy_counts/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("privacy_counts"),
    message:
        "Counting quasi-identifier combinations of {wildcards.use_case}/{wildcards.center}"
    shell:
        "oncofhir --log {log:q} privacy-counts --dictionary {input.dictionary:q} --records {input.records:q}"
        " --index {input.index:q} --center {wildcards.center:q} --out {output:q}"


rule privacy:
    """k-anonymity, l-diversity, the classes below k and what would reach k, over every center of a use case."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        counts=get_privacy_counts,
    output:
        json=f"{RESULTS}/privacy/{{use_case}}.json",
        tsv=f"{RESULTS}/privacy/{{use_case}}.tsv",
    log:
        f"{RESULTS}/logs/privacy/{{use_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/privacy/{{use_case}}.tsv"
    conda:
        ENV
    params:
        code=code_version("privacy"),
        k=config["privacy"]["k"],
        action=config["privacy"]["action"],
    message:
        "Measuring the re-identification risk of {wildcards.use_case}"
    shell:
        "oncofhir --log {log:q} privacy --dictionary {input.dictionary:q} --counts {input.counts:q}"
        " --json {output.json:q} --tsv {output.tsv:q} --k {params.k} --action {params.action}"
