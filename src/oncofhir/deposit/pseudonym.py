"""Pseudonyms: the platform's keyed second hash over the ids the hospitals already hashed.

The EuCanImage scheme hashes twice: each hospital replaces its patient ids by a hash before export, and the
platform hashes those again with a secret only it holds, so that neither a hospital (which can recompute its own
first hash) nor anyone holding the deposited data can link a deposited patient back without that secret.

Scheme (version 1, pinned by a test; changing it changes every pseudonym):

    message   = b"oncofhir-pseudonym-v1\\x00"
                + len(use_case) as 4-byte big-endian + use_case (UTF-8)
                + len(record_id) as 4-byte big-endian + record_id (UTF-8)
    digest    = HMAC-SHA256(secret, message)
    pseudonym = "psn-" + lowercase base32 of the first 20 bytes of digest (160 bits, 32 characters, no padding)

The length prefixes make the encoding unambiguous (no pair of (use case, record id) shares a message), and the
use case is included so the same patient is not linkable across use cases. The pseudonym is a plain ASCII name
(``[a-z2-7]``), hence a safe file stem and an EGA-safe file name. The secret is the UTF-8 bytes of an environment
variable, never a config value, so it cannot end up in the config, the logs or the repository.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import ConfigError

SECRET_ENV = "ONCOFHIR_PSEUDONYM_KEY"  # noqa: S105 (the variable's name, not a value)
MIN_SECRET_BYTES = 16
#: The documented demo secret (README's demo command). Public, so it must never pseudonymise real data.
DEMO_SECRET = "oncofhir-demo-secret-NOT-for-real-data"  # noqa: S105 (public on purpose)
#: Default Patient.identifier system of pseudonymised bundles.
PSEUDONYM_SYSTEM = "urn:oncofhir:pseudonym"
PREFIX = "psn-"
DIGEST_BYTES = 20
PSEUDONYM_RE = re.compile(r"^psn-[a-z2-7]{32}$")
_DOMAIN = b"oncofhir-pseudonym-v1\x00"
_FINGERPRINT_LABEL = b"oncofhir-secret-fingerprint-v1"


def secret_fingerprint(secret: bytes) -> str:
    """A keyed fingerprint of the secret, never the secret: ``hmac-sha256:`` + 16 hex digits of
    HMAC-SHA256(secret, ``oncofhir-secret-fingerprint-v1``).

    Recorded in every center's FHIR summary and deposit manifest, so that a deposit whose centers were made with
    two secrets is refused (their pseudonyms would not match, and the cross-center duplicate check would be void).
    A fixed label under the secret's key reveals nothing about the secret (it is a MAC, and 64 bits of it).
    """
    return "hmac-sha256:" + hmac.new(bytes(secret), _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def load_secret(env: Mapping[str, str] = os.environ, *, allow_demo: bool = True) -> bytes:
    """Read the pseudonym secret from ``ONCOFHIR_PSEUDONYM_KEY``; any problem is a ConfigError before any work.

    Messages never include the value. Leading or trailing white space is refused rather than stripped: a secret
    read with and without its trailing newline would otherwise silently give two sets of pseudonyms.
    """
    value = env.get(SECRET_ENV)
    how = (
        f"set it to a random value of at least {MIN_SECRET_BYTES} bytes, e.g. "
        f"export {SECRET_ENV}=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\", "
        "and keep it secret and unchanged for the whole project (docs/deposit.md)"
    )
    if not value:
        raise ConfigError(
            f"the pseudonym secret is not set: environment variable {SECRET_ENV} is missing or empty; {how}"
        )
    secret = value.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the pseudonym secret in {SECRET_ENV} is too short ({len(secret)} bytes, at least {MIN_SECRET_BYTES} "
            f"needed); {how}"
        )
    if value != value.strip():
        raise ConfigError(f"the pseudonym secret in {SECRET_ENV} starts or ends with white space; remove it")
    if not allow_demo and value == DEMO_SECRET:
        raise ConfigError(f"{SECRET_ENV} holds the public demo secret, which must never pseudonymise real data; {how}")
    return secret


class Pseudonymizer:
    """Computes pseudonyms with one secret; the secret is never shown by repr() or str()."""

    __slots__ = ("_cache", "_mac", "fingerprint")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"the pseudonym secret must be at least {MIN_SECRET_BYTES} bytes")
        self._mac = hmac.new(bytes(secret), _DOMAIN, hashlib.sha256)
        self.fingerprint = secret_fingerprint(bytes(secret))
        self._cache: dict[str, hmac.HMAC] = {}

    def __repr__(self) -> str:
        return "Pseudonymizer(<secret hidden>)"

    def pseudonym(self, use_case: str, record_id: str) -> str:
        """The pseudonym of ``record_id`` in ``use_case``: same inputs and secret, same pseudonym, always."""
        base = self._cache.get(use_case)
        if base is None:  # the keyed state after the use-case part, computed once per use case
            uc = use_case.encode("utf-8")
            base = self._mac.copy()
            base.update(len(uc).to_bytes(4, "big") + uc)
            self._cache[use_case] = base
        rid = record_id.encode("utf-8")
        mac = base.copy()
        mac.update(len(rid).to_bytes(4, "big") + rid)
        return PREFIX + base64.b32encode(mac.digest()[:DIGEST_BYTES]).decode("ascii").lower()


def is_pseudonym(name: str) -> bool:
    """True when ``name`` has the shape of a pseudonym (it cannot tell whether the right secret made it)."""
    return PSEUDONYM_RE.match(name) is not None


def changed_secret(secret: bytes, summaries: Iterable[str | Path]) -> str | None:
    """Why ``secret`` must not be used with these existing FHIR summaries (another secret made them), or None.

    The workflow asks this before any job: after the secret changes Snakemake sees nothing to rerun, and a center
    rebuilt later would silently join a deposit made with the other secret. Summaries without a fingerprint
    (none yet, or written before fingerprints were recorded) are not compared.
    """
    now = secret_fingerprint(secret)
    other: dict[str, list[str]] = {}
    for path in summaries:
        try:
            recorded = json.loads(Path(path).read_text(encoding="utf-8")).get("secret_fingerprint")
        except (OSError, ValueError):
            continue
        if recorded and recorded != now:
            other.setdefault(recorded, []).append(str(path))
    if not other:
        return None
    where = "; ".join(
        f"{fp} in {paths[0]}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
        for fp, paths in sorted(other.items())
    )
    return (
        f"{SECRET_ENV} is not the secret that made the existing pseudonyms (secret {now} now, {where}): one deposit "
        "must use one secret. If the change is a mistake, set the project's secret again; to pseudonymise every "
        "center with the new secret, rerun them all: snakemake --forcerun fhir (docs/deposit.md)"
    )
