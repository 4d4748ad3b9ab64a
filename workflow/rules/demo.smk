rule demo_export:
    """Generate a seeded synthetic REDCap export for a demo center (only paths under the demo folder)."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
    output:
        f"{DEMO}/{{use_case}}/{{center}}.csv",
    log:
        f"{RESULTS}/logs/demo_export/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/demo_export/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("demo_export"),
        records=config["demo"]["records"],
        seed=config["demo"]["seed"],
    message:
        "Generating demo export {output}"
    script:
        "../scripts/demo_export.py"
