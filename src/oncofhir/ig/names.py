"""Names and canonical URLs of the generated Implementation Guide's artefacts.

One module, imported by the IG generator and by the bundle builder (``meta.profile``), so a bundle claims exactly
the URL the IG defines. Slot ids are ``^[a-z][a-z0-9_]*$`` (mapping schema); FHIR ids allow ``[A-Za-z0-9.-]``, so
``_`` becomes ``-`` and ``.`` (allowed in no use case or slot id) separates use case, slot and element:
``uc1.hep-b`` (profile), ``uc1.hep-b.value`` (value set), ``uc1`` (the use case's Bundle profile), so no two
artefacts of one type can share an id.
"""

from __future__ import annotations

DEFAULT_CANONICAL = "https://oncofhir.example.org/fhir"
PACKAGE_ID = "oncofhir.eucanimage"
FHIR_VERSION = "4.3.0"
#: FHIR ids are at most 64 characters.
MAX_ID = 64


def fhir_id(*parts: str) -> str:
    """``uc1``, ``hep_b`` -> ``uc1.hep-b``: a valid FHIR id (checked by the generator for length)."""
    return ".".join(p.replace("_", "-") for p in parts)


def fsh_name(use_case: str, slot: str | None = None, suffix: str = "") -> str:
    """A FSH/StructureDefinition name a reviewer can search for: ``Uc1_hep_b`` for slot ``hep_b`` of ``uc1``.

    Slot-derived names are ``<Usecase>_<slot>`` (lower case after the prefix); other artefacts add a capitalised
    ``suffix`` (``Uc1_hep_b_Value``, ``Uc1Bundle``), which no slot name can equal.
    """
    head = use_case[:1].upper() + use_case[1:]
    if slot is None:
        return head + suffix
    return f"{head}_{slot}" + (f"_{suffix}" if suffix else "")


def profile_url(base: str, use_case: str, slot: str) -> str:
    """Canonical URL of a slot's profile (what the slot's resources claim in ``meta.profile``)."""
    return f"{base.rstrip('/')}/StructureDefinition/{fhir_id(use_case, slot)}"


def bundle_profile_url(base: str, use_case: str) -> str:
    """Canonical URL of a use case's Bundle profile."""
    return f"{base.rstrip('/')}/StructureDefinition/{fhir_id(use_case)}"
