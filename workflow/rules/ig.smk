rule implementation_guide:
    """The data model as a FHIR Implementation Guide: FSH from the compiled dictionaries, SUSHI, package.tgz.

    Depends only on the dictionaries (via their compiled form), the ontology tables and the config: a changed
    export never reruns it. SUSHI runs once for every use case; on first use the job installs it with npm
    (--install-sushi: locked, logged, offline thereafter)."""
    input:
        dictionaries=ig_dictionaries(),
        ontologies=ontology_tables(),
    output:
        package=f"{RESULTS}/ig/package.tgz",
        pages=[f"{RESULTS}/ig/{u}.html" for u in USE_CASES],
    log:
        f"{RESULTS}/logs/implementation_guide.log",
        sushi=f"{RESULTS}/logs/implementation_guide.sushi.log",
    benchmark:
        f"{RESULTS}/benchmarks/implementation_guide.tsv"
    # the longest single job of the demo (SUSHI, and npm on first use), ready as soon as the dictionaries are
    # compiled: started first, it runs beside the per-center jobs instead of after them
    priority: 10
    conda:
        ENV
    params:
        code=code_version("implementation_guide"),
        canonical=config["ig"]["canonical"],
        identifier_system=config["fhir"]["identifier_system"],
        out_dir=lambda wildcards, output: os.path.dirname(output.package),
    message:
        "Generating the FHIR Implementation Guide (FSH, SUSHI) for {params.out_dir}"
    shell:
        "oncofhir --log {log[0]:q} ig --dictionary {input.dictionaries:q} --out {params.out_dir:q}"
        " --canonical {params.canonical:q} --identifier-system {params.identifier_system:q}"
        " --package {output.package:q} --sushi-log {log.sushi:q} --install-sushi"
