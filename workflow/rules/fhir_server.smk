# Load into a FHIR server and query it back (docs/fhir-server.md): optional, fhir_server.enabled.
#
# The load job reads the center's NDJSON, which is temporary by default (deposit.temp_plaintext): as an input of
# this rule, Snakemake deletes it only once this job has finished too, so the plaintext is loaded, then removed.


if config["fhir_server"]["enabled"] and config["fhir_server"]["token_env"]:

    envvars:
        config["fhir_server"]["token_env"],


rule fhir_server_load:
    """One center's bundles into the FHIR server as transactions (PUT by resource id), with its load report.

    A center the server refuses (or cannot be reached for) gets a failed report and the job still succeeds: the
    other centers load, and the run report and fhir_server_verify show the failure."""
    input:
        ndjson=f"{RESULTS}/fhir/{{use_case}}/{{center}}.ndjson",
        dictionary=f"{RESULTS}/dictionaries/{{use_case}}.json",
        # only bundles that passed validation are loaded (with validation.fail_on_error, the default)
        validation=f"{RESULTS}/validation/{{use_case}}/{{center}}/summary.json",
    output:
        report=f"{RESULTS}/server/{{use_case}}/{{center}}.json",
    log:
        f"{RESULTS}/logs/fhir_server_load/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fhir_server_load/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    params:
        code=code_version("fhir_server_load"),
        server=fhir_server_args,
        report_dir=lambda wildcards, output: os.path.dirname(
            os.path.dirname(output.report)
        ),
    message:
        "Loading {wildcards.use_case}/{wildcards.center} into the FHIR server"
    shell:
        # the token is read from the environment variable named by --token-env, inside the job: never an argument
        "oncofhir --log {log:q} load {input.ndjson:q} --dictionary {input.dictionary:q}"
        " --report-dir {params.report_dir:q} {params.server} --no-fail-on-error"


rule fhir_server_verify:
    """Count every loaded resource type, each use case's resources and the dictionaries' clinical searches by FHIR
    search; each count must equal what the loaded bundles hold."""
    input:
        per_center(f"{RESULTS}/server/{{use_case}}/{{center}}.json"),
    output:
        f"{RESULTS}/server/verify.json",
    log:
        f"{RESULTS}/logs/fhir_server_verify.log",
    benchmark:
        f"{RESULTS}/benchmarks/fhir_server_verify.tsv"
    conda:
        ENV
    params:
        code=code_version("fhir_server_verify"),
        server=lambda wildcards: fhir_server_args(wildcards, load=False),
    message:
        "Counting the loaded cohort by FHIR search"
    shell:
        "oncofhir --log {log:q} server-verify {input:q} --out {output:q} {params.server} --no-fail-on-error"
