rule split_export:
    """Select one center's rows (its data access group) from a combined REDCap export."""
    input:
        get_combined_export,
    output:
        export=f"{RESULTS}/exports/{{use_case}}/{{center}}.csv",
        report=f"{RESULTS}/exports/{{use_case}}/{{center}}.split.json",
    log:
        f"{RESULTS}/logs/split_export/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/split_export/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("split_export"),
        dag=get_dag,
    message:
        "Splitting {wildcards.use_case}/{wildcards.center} out of {input}"
    script:
        "../scripts/split_export.py"


rule unclaimed_groups:
    """List data access groups of combined exports that no center claims (rows that would otherwise be lost)."""
    input:
        split_reports(),
    output:
        f"{RESULTS}/report/unclaimed_groups.tsv",
    log:
        f"{RESULTS}/logs/unclaimed_groups.log",
    benchmark:
        f"{RESULTS}/benchmarks/unclaimed_groups.tsv"
    conda:
        ENV
    params:
        code=code_version("unclaimed_groups"),
    message:
        "Checking that every data access group is claimed by a center"
    script:
        "../scripts/unclaimed_groups.py"
