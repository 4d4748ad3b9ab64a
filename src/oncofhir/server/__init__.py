"""Load the cohort into a FHIR server and query it back (``oncofhir load``, rules ``fhir_server_load`` and
``fhir_server_verify``; docs/fhir-server.md).

One job per module: :mod:`.client` speaks HTTP to the server (retries, back-off, bearer token),
:mod:`.transaction` turns a center's collection bundles into transaction bundles, :mod:`.searches` derives the
clinical searches from a dictionary, :mod:`.load` posts one center and writes its load report, :mod:`.verify`
counts by FHIR search and compares with what the bundles hold, :mod:`.html` shows both in the run report.
"""
