"""Snakemake adapter: validate one center's bundles and write its report."""

from pathlib import Path

from oncofhir.smk import run
from oncofhir.validate.report import stage_validate

sm = snakemake  # noqa: F821 (injected by Snakemake)


def validate() -> str:
    """Validate and return the log line: the center's summary line and the speed."""
    summary = stage_validate(
        sm.input.dictionary,
        sm.input.bundles,
        sm.output.summary.rsplit("/", 1)[0],
        fail_on_error=sm.params.fail_on_error,
        hl7_outcome=sm.input.hl7 or None,
        ontologies=Path(sm.input.ontologies[0]).parent,
        center=sm.wildcards.center,
    )
    return f"{summary['line']} ({summary['seconds']} s, {summary['bundles_per_second']} bundles/s)"


run(sm, validate)
