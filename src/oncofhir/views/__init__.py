"""SQL-on-FHIR v2 views: the runner, the view generator from compiled dictionaries, tables and the round trip."""
