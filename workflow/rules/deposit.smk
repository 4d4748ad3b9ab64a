# Deposit for the EGA (docs/deposit.md): Crypt4GH-encrypted bundles per (use case, center), checksums, manifest;
# a use case with generalisation rules gets its deposit copy generalised on the way (docs/provenance.md).


if config["deposit"].get("sender_key"):

    envvars:
        "ONCOFHIR_C4GH_PASSPHRASE",


rule demo_keys:
    """Demo Crypt4GH key pairs (EGA stand-in, consortium), made at run time: never committed, never for real data."""
    output:
        ega=f"{RESULTS}/keys/ega.pub",
        ega_secret=f"{RESULTS}/keys/ega.sec",
        consortium=f"{RESULTS}/keys/consortium.pub",
        consortium_secret=f"{RESULTS}/keys/consortium.sec",
    log:
        f"{RESULTS}/logs/demo_keys.log",
    benchmark:
        f"{RESULTS}/benchmarks/demo_keys.tsv"
    conda:
        ENV
    params:
        code=code_version("demo_keys"),
    message:
        "Generating demo Crypt4GH keys next to {output.ega} (demo only)"
    script:
        "../scripts/demo_keys.py"


rule encrypt:
    """Every bundle (read from the NDJSON, named by the index) and the NDJSON of one center to .c4gh, with a manifest;
    the center's Parquet tables likewise, with their own manifest (behind the same privacy gate; a use case that
    generalises gets its tables' deposit copy built again from the generalised bundles).
    """
    input:
        unpack(get_encrypt_table_inputs),
        ndjson=f"{RESULTS}/fhir/{{use_case}}/{{center}}.ndjson",
        index=f"{RESULTS}/fhir/{{use_case}}/{{center}}.index.tsv",
        summary=f"{RESULTS}/fhir/{{use_case}}/{{center}}.summary.json",
        recipients=get_recipient_keys,
        sender=get_sender_key,
        privacy=get_privacy_decision,
        dictionary=get_generalise_inputs,
    output:
        encrypted=directory(f"{RESULTS}/ega/{{use_case}}/{{center}}"),
        manifest=f"{RESULTS}/ega/{{use_case}}/{{center}}.manifest.tsv",
        # what generalisation changed here, counts per rule (docs/provenance.md#generalisation), for the crate
        generalised=f"{RESULTS}/privacy/{{use_case}}/{{center}}.generalised.json",
        tables_encrypted=directory(f"{RESULTS}/ega/tables/{{use_case}}/{{center}}"),
        tables_manifest=f"{RESULTS}/ega/tables/{{use_case}}/{{center}}.manifest.tsv",
    log:
        f"{RESULTS}/logs/encrypt/{{use_case}}/{{center}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/encrypt/{{use_case}}/{{center}}.tsv"
    conda:
        ENV
    threads: 2
    params:
        code=code_version("encrypt"),
        recipients=lambda wildcards, input: " ".join(
            f"--recipient {shlex.quote(key)}" for key in input.recipients
        ),
        sender=lambda wildcards, input: (
            f"--sender-key {shlex.quote(input.sender[0])}" if input.sender else ""
        ),
        generalise=get_generalise_args,
        tables=get_encrypt_table_args,
    message:
        "Encrypting {wildcards.use_case}/{wildcards.center} for the EGA"
    shell:
        # bundles come from the NDJSON's lines, named by the index: no per-patient plaintext file is read
        PRIVACY_GATE
        + "oncofhir --log {log:q} encrypt --ndjson {input.ndjson:q} --index {input.index:q}"
        " --out-dir {output.encrypted:q} --manifest {output.manifest:q} --use-case {wildcards.use_case:q}"
        " --center {wildcards.center:q} --fhir-summary {input.summary:q} {params.recipients} {params.sender} --threads {threads}"
        " {params.generalise} --generalised {output.generalised:q} {params.tables}"


rule manifest:
    """Merge the per-center manifests into results/ega/manifest.tsv; every encrypted file must exist with its size."""
    input:
        per_center(f"{RESULTS}/ega/{{use_case}}/{{center}}.manifest.tsv"),
        tables=get_table_manifests(),
    output:
        f"{RESULTS}/ega/manifest.tsv",
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    conda:
        ENV
    params:
        code=code_version("manifest"),
    message:
        "Writing the EGA manifest"
    script:
        "../scripts/merge_manifests.py"
