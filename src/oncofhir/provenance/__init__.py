"""Provenance: the code version of each workflow stage (a rerun trigger) and the run's RO-Crate."""
