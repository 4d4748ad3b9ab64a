"""FHIR R4B bundle generation from compiled dictionaries and ingested records."""
