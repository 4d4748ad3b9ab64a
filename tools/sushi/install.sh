#!/usr/bin/env bash
# Install SUSHI (npm fsh-sushi 3.21.0) and the FHIR core package hl7.fhir.r4b.core 4.3.0 for offline use, ahead of
# time. Optional: with ig.enabled auto (the default) or true, the workflow's implementation_guide job runs the same
# installer on first use. The installer ships inside the package (src/oncofhir/ig/install_sushi.sh), so that job
# finds it after `pip install .` too; this script only runs it. Needs npm. Idempotent.
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../src/oncofhir/ig/install_sushi.sh" "$@"
