# Re-identification risk (docs/provenance.md#re-identification-risk): per center, the fhir job counts the deposited
# records per quasi-identifier combination (no record id); per use case, k-anonymity, l-diversity and the release
# decision.


localrules:
    privacy,


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
