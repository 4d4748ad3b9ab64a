rule compile_dictionary:
    """Lint and compile a use case's REDCap dictionary + FHIR mapping; fails fast on any defect."""
    input:
        redcap=f"{DICTIONARIES}/{{use_case}}/redcap_dictionary.csv",
        mapping=f"{DICTIONARIES}/{{use_case}}/mapping.yaml",
        ontologies=ontology_tables(),
    output:
        f"{RESULTS}/dictionaries/{{use_case}}.json",
    log:
        f"{RESULTS}/logs/compile_dictionary/{{use_case}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/compile_dictionary/{{use_case}}.tsv"
    # every dictionary first (each takes under a second): the IG job (priority 10, ig.smk) waits for all of them
    priority: 10
    conda:
        ENV
    params:
        code=code_version("compile_dictionary"),
    message:
        "Compiling the {wildcards.use_case} dictionary"
    script:
        "../scripts/compile_dictionary.py"
