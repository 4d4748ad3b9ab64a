# Provenance (docs/provenance.md#run-crate): the run's Provenance Run Crate, written once everything else is done.


localrules:
    ro_crate,


rule ro_crate:
    """results/ro-crate/ro-crate-metadata.json: workflow, step runs, versions, reports and deposit checksums."""
    input:
        get_final_outputs(),
        get_privacy_reports(),
    output:
        f"{RESULTS}/ro-crate/ro-crate-metadata.json",
    log:
        f"{RESULTS}/logs/ro_crate.log",
    benchmark:
        f"{RESULTS}/benchmarks/ro_crate.tsv"
    conda:
        ENV
    params:
        code=code_version("ro_crate"),
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        workflow_dir=workflow.basedir,
        metadata=os.path.join(os.getcwd(), ".snakemake", "metadata"),
        centers=json.dumps(
            {u: sorted(CENTERS[CENTERS.use_case == u].center) for u in USE_CASES}
        ),
        dictionaries=DICTIONARIES,
        ontologies=ONTOLOGIES,
    message:
        "Writing the run's RO-Crate"
    script:
        "../scripts/ro_crate.py"
