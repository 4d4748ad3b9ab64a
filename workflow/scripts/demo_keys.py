"""Snakemake adapter: generate the demo Crypt4GH key pairs."""

from pathlib import Path

from oncofhir.deposit.keys import generate_demo_keys
from oncofhir.smk import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, lambda: {name: str(pub) for name, (pub, _) in generate_demo_keys(Path(sm.output.ega).parent).items()})
