"""The recipient private key the workflow builds ``results/tables/cohort.duckdb`` from the deposit with.

Checked when the workflow is parsed, before any job: a key that cannot be read, or that no recipient's public key
belongs to, would otherwise fail the cohort job at the very end of a run, after every center's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..deposit.keys import load_private_key, load_recipients, public_from_private
from ..errors import ConfigError

#: The environment variable holding the passphrase of ``tables.cohort.sk`` (declared with ``envvars:``).
COHORT_PASSPHRASE_ENV = "ONCOFHIR_COHORT_PASSPHRASE"  # noqa: S105 (the variable's name, not a value)


def check_cohort_key(private_key: str | Path, recipients: Sequence[str | Path]) -> None:
    """``private_key`` unlocks (passphrase from :data:`COHORT_PASSPHRASE_ENV`) and is a configured recipient's."""
    secret = load_private_key(private_key, COHORT_PASSPHRASE_ENV)
    if not recipients or public_from_private(secret) not in load_recipients(list(recipients)):
        raise ConfigError(
            "tables.cohort.sk: this private key belongs to none of deposit.recipients, so it cannot decrypt the "
            "deposited tables the cohort database is built from: give a recipient's private key",
            path=str(private_key),
        )
