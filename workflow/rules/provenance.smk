# Provenance (docs/provenance.md#run-crate): the run's Provenance Run Crate, written once everything else is done.


localrules:
    ro_crate,


rule ro_crate:
    """results/ro-crate/ro-crate-metadata.json: workflow, step runs, versions, reports and deposit checksums.

    No parameter names the checkout or the working directory (a moved finished run stays complete): the script
    finds the workflow from its own folder and Snakemake's job records in the working directory's .snakemake/.
    """
    input:
        final=get_final_outputs(),
        privacy=get_privacy_reports(),
        generalised=get_generalisation_records(),
        ontologies=ontology_tables(),
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
        centers=json.dumps(
            {u: sorted(CENTERS[CENTERS.use_case == u].center) for u in USE_CASES}
        ),
    message:
        "Writing the run's RO-Crate"
    script:
        "../scripts/ro_crate.py"
