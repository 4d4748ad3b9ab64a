"""The EuCanImage data model as a FHIR Implementation Guide, generated from the compiled dictionaries (issue #14).

``generate.generate`` writes the FSH sources and ``sushi-config.yaml`` (pure Python, milliseconds);
``sushi.compile_fsh`` and ``sushi.pack`` compile them with SUSHI into a FHIR NPM package (``package.tgz``) that the
HL7 validator loads with ``-ig``; ``names`` holds the canonical URLs the bundles claim. Nothing is imported here:
the bundle builder imports ``names`` alone, on the FHIR stage's start-up path.
"""
