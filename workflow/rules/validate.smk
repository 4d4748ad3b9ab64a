rule validate:
    """Validate a center's bundles: six in-process layers, plus the HL7 validator's findings when that stage is on."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        bundles=f"{RESULTS}/fhir/{{use_case}}/{{center}}.ndjson",
        index=f"{RESULTS}/fhir/{{use_case}}/{{center}}.index.tsv",
        ontologies=ontology_tables(),
        hl7=get_hl7_outcome,
    output:
        issues=f"{RESULTS}/validation/{{use_case}}/{{center}}/issues.json",
        tsv=f"{RESULTS}/validation/{{use_case}}/{{center}}/issues.tsv",
        summary=f"{RESULTS}/validation/{{use_case}}/{{center}}/summary.json",
    log:
        f"{RESULTS}/logs/validate/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/validate/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("validate"),
        definitions=fhir_definitions_digest(),
        fail_on_error=(
            "--fail-on-error"
            if config["validation"]["fail_on_error"]
            else "--no-fail-on-error"
        ),
        hl7=lambda wildcards, input: (
            f"--hl7-outcome {shlex.quote(input.hl7)}" if input.hl7 else ""
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.summary),
        ontologies=lambda wildcards, input: os.path.dirname(input.ontologies[0]),
    message:
        "Validating the FHIR bundles of {wildcards.use_case}/{wildcards.center}"
    shell:
        "oncofhir --log {log:q} validate-center --dictionary {input.dictionary:q} --bundles {input.bundles:q}"
        " --index {input.index:q} --out-dir {params.out_dir:q} --center {wildcards.center:q}"
        " --ontologies {params.ontologies:q}"
        " {params.hl7} {params.fail_on_error}"


rule hl7_validator:
    """The official HL7 FHIR validator on a center's bundles, in one JVM, offline (-tx n/a)."""
    input:
        bundles=f"{RESULTS}/fhir/{{use_case}}/{{center}}",
        ig=get_ig_package,
    output:
        f"{RESULTS}/validation/{{use_case}}/{{center}}/hl7_outcome.json",
    log:
        f"{RESULTS}/logs/hl7_validator/{{use_case}}/{{center}}.log",
        validator=f"{RESULTS}/logs/hl7_validator/{{use_case}}/{{center}}.validator.log",
    benchmark:
        f"{RESULTS}/benchmarks/hl7_validator/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=5000,
    params:
        code=code_version("hl7_validator"),
        home=config["validation"]["hl7_validator"]["home"],
        java=config["validation"]["hl7_validator"]["java"],
        memory=config["validation"]["hl7_validator"]["memory"],
        timeout=config["validation"]["hl7_validator"]["timeout"],
    message:
        "Running the HL7 FHIR validator on {wildcards.use_case}/{wildcards.center}"
    script:
        "../scripts/hl7_validator.py"
