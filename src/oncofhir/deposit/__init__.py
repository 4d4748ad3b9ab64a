"""The deposit stage: what leaves the consortium for the European Genome-phenome Archive (docs/deposit.md).

One job per module: ``pseudonym`` (keyed second hash of the hospitals' hashed ids), ``names`` (EGA file-name
rules), ``keys`` (Crypt4GH key loading, checking and demo key generation), ``encrypt`` (one center's files to
``.c4gh`` with checksums) and ``manifest`` (merge and verify).
"""
