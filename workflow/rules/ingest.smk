rule ingest:
    """Read a center's REDCap export against its dictionary: normalised records, rejects, report."""
    input:
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        export=get_export,
    output:
        records=plaintext(f"{RESULTS}/ingest/{{use_case}}/{{center}}/records.csv"),
        rejects=f"{RESULTS}/ingest/{{use_case}}/{{center}}/rejects.tsv",
        report=f"{RESULTS}/ingest/{{use_case}}/{{center}}/report.json",
    log:
        f"{RESULTS}/logs/ingest/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("ingest"),
        require_complete=(
            "--require-complete" if config["ingest"]["require_complete"] else ""
        ),
        on_refused=config["ingest"]["on_refused"],
    message:
        "Ingesting {wildcards.use_case}/{wildcards.center}"
    shell:
        # the package's CLI, not a script: see the note on job start-up in docs/cluster.md
        "oncofhir --log {log:q} ingest --dictionary {input.dictionary:q} --export {input.export:q}"
        " --records {output.records:q} --rejects {output.rejects:q} --report {output.report:q}"
        " {params.require_complete} --on-refused {params.on_refused}"
