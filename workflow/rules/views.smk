# Analysis-ready tables (docs/tables.md): SQL-on-FHIR v2 views generated from each dictionary; the fhir job runs
# them over each center's bundles into Parquet, with the round-trip proof, and encrypt deposits them; one DuckDB
# cohort database over every center's tables.


# The passphrase of the key the cohort database is decrypted with (tables.cohort.sk): declared so cluster jobs get it.
if COHORT_SK and DEPOSIT["enabled"] and DEPOSIT["temp_plaintext"]:

    envvars:
        COHORT_PASSPHRASE_ENV,


rule views:
    """The use case's ViewDefinitions (a wide patient view and long views), generated from its compiled dictionary."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
    output:
        directory(f"{RESULTS}/views/{{use_case}}"),
    log:
        f"{RESULTS}/logs/views/{{use_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/views/{{use_case}}.tsv"
    conda:
        ENV
    params:
        code=code_version("views"),
    message:
        "Writing the SQL-on-FHIR views of {wildcards.use_case}"
    shell:
        "oncofhir --log {log:q} views --dictionary {input.dictionary:q} --out-dir {output:q}"


rule cohort_db:
    """results/tables/cohort.duckdb (docs/tables.md): views over every center's kept Parquet files, or, when they are
    deleted once encrypted, the rows of the encrypted tables decrypted with a recipient's key (0600).
    """
    input:
        unpack(get_cohort_inputs),
    output:
        f"{RESULTS}/tables/cohort.duckdb",
    log:
        f"{RESULTS}/logs/cohort_db.log",
    benchmark:
        f"{RESULTS}/benchmarks/cohort_db.tsv"
    conda:
        ENV
    params:
        source=get_cohort_args,
        code=code_version("cohort_db"),
    message:
        "Writing the cohort database {output}"
    shell:
        "oncofhir --log {log:q} cohort {params.source} --out {output:q}"
