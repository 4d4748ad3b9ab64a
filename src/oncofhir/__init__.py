"""oncofhir: REDCap exports to quality-scored, validated FHIR R4B bundles for oncology AI research."""

import uuid

__version__ = "0.1.0"

#: Fixed project namespace for every deterministic UUIDv5 (bundles, fullUrls, resource ids).
#: Changing it changes every identifier ever emitted: never do that within a major version.
NAMESPACE = uuid.UUID("6f3c2a4e-8d1b-5c7e-9a0f-4b2d6e8c1a35")
