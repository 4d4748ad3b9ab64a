"""Whether this run builds the IG (``ig.enabled``: ``auto``, ``true`` or ``false``), decided before any job.

``auto`` (the default) builds the IG where it can: SUSHI installed (``ONCOFHIR_SUSHI_HOME`` or
``~/.cache/oncofhir/sushi``, or on PATH, with the core package cached), or npm there to install it on first use;
otherwise it skips the IG with one line in the log and the run report. ``true`` requires it (a machine with neither
stops before any job); ``false`` turns it off. The decision depends only on what is installed on the machine, not on
what a run has done: SUSHI missing but npm present decides "build" before and after the first run's install, so a
rerun plans the same jobs and finds nothing to do.

The bundles claim the IG's profiles (``fhir.claim_profiles``) only when this run builds the IG: a bundle never names
a profile that no package defines (the HL7 validator stage would try to download it, and a receiver could not
resolve it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .install import CORE_PACKAGE, SUSHI_VERSION, installed_sushi, npm_available, sushi_home

#: Set by the main Snakemake process to its decision ("1"/"0"): jobs that parse the workflow again elsewhere (a
#: cluster node) take it instead of deciding on their own machine, so every job agrees with the plan.
DECISION_VARIABLE = "ONCOFHIR_IG_BUILD"


@dataclass(frozen=True)
class IgPlan:
    """The decision: build the IG or not, whether bundles claim its profiles, and the line that says why."""

    build: bool
    claim_profiles: bool
    line: str


def plan_ig(config: Mapping[str, Any], *, decided: str | None = None) -> IgPlan:
    """Decide from the config and the machine (or ``decided``, the main process's "1"/"0"); a one-line
    ConfigError when ``ig.enabled`` is true and SUSHI can neither be found nor installed."""
    mode = config["ig"]["enabled"]
    claims = bool(config["fhir"]["claim_profiles"])
    home = sushi_home()
    if decided in ("0", "1"):
        build = decided == "1"
        return IgPlan(build, claims and build, "")
    if mode is False:
        return IgPlan(False, False, "IG off (ig.enabled: false): no results/ig/package.tgz, bundles claim no profile")
    if installed_sushi() is not None:
        return IgPlan(True, claims, "")
    if npm_available():
        return IgPlan(
            True,
            claims,
            f"IG: SUSHI (fsh-sushi {SUSHI_VERSION}) and {CORE_PACKAGE} are not installed yet: the "
            f"implementation_guide job installs them with npm into {home} (once; its log says what it did)",
        )
    if mode is True:
        raise ConfigError(
            f"ig.enabled is true but SUSHI (fsh-sushi {SUSHI_VERSION}) is not installed in {home} and npm is not on "
            "PATH to install it: install Node.js/npm (e.g. apt-get install npm) and rerun, or set ig.enabled: auto "
            "(skips the IG on such a machine) or false"
        )
    return IgPlan(
        False,
        False,
        f"IG skipped (ig.enabled: auto): neither SUSHI (fsh-sushi {SUSHI_VERSION} in {home}) nor npm to install it "
        "is available, so no results/ig/package.tgz and bundles claim no profile; install Node.js/npm to build it",
    )


def share_decision(plan: IgPlan, environ: MutableMapping[str, str] = os.environ) -> None:
    """Hand the main process's decision to the jobs it starts (see :data:`DECISION_VARIABLE`)."""
    environ[DECISION_VARIABLE] = "1" if plan.build else "0"
