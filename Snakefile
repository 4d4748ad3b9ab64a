# oncofhir: REDCap exports -> quality-scored, validated, pseudonymised and encrypted FHIR R4B bundles, per use case
# and center.
# Usage: snakemake --cores N [--configfile my.yaml]. Documentation: README.md, config/README.md, docs/.


# The workflow's own defaults, found beside this Snakefile whatever the working directory (`snakemake -s
# /path/to/Snakefile` from a data folder); --configfile files and --config values override them key by key.
DEFAULT_CONFIGFILE = f"{workflow.basedir}/config/config.yaml"


configfile: DEFAULT_CONFIGFILE


include: "workflow/rules/common.smk"


# Small bookkeeping jobs run in the main Snakemake process's host, never queued on a cluster: each takes under a
# second, while a SLURM job costs seconds of scheduling (docs/cluster.md).
localrules:
    compile_dictionary,
    demo_export,
    demo_keys,
    unclaimed_groups,
    qc_index,
    run_summary,
    report_file,
    all,


include: "workflow/rules/dictionary.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/fhir.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/privacy.smk"
include: "workflow/rules/deposit.smk"
include: "workflow/rules/views.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/ig.smk"
include: "workflow/rules/fhir_server.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
        f"{RESULTS}/ro-crate/ro-crate-metadata.json",
