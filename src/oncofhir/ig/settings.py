"""Configuration rules of the IG (checked before any job, like the rest of the config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError


def check_ig_config(config: Mapping[str, Any]) -> None:
    """The HL7 validator stage resolves the profiles the bundles claim from the IG package: with claims on and no
    package it would try to download them and stop (offline: a Java exception, no outcome). Say so up front."""
    hl7_on = config["validation"]["hl7_validator"]["enabled"]
    if hl7_on and config["fhir"]["claim_profiles"] and not config["ig"]["enabled"]:
        raise ConfigError(
            "validation.hl7_validator.enabled needs ig.enabled while fhir.claim_profiles is true (the HL7 validator "
            "resolves the profiles the bundles claim from results/ig/package.tgz): set ig: {enabled: true} (after "
            "bash tools/sushi/install.sh) or fhir: {claim_profiles: false}"
        )
