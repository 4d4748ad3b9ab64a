"""Build one FHIR R4B collection Bundle per record from a compiled dictionary.

Design: everything that does not depend on the record (concept codings, resource plans, logic expressions) is
resolved once per center; REDCap logic is evaluated once per expression over the whole center (vectorised); the
per-record loop only assembles plain dicts. Bundles are plain JSON-ready dicts, validated in bulk elsewhere:
building pydantic models per record is what made the original scripts slow.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import NAMESPACE
from ..dictionary.compiled import CompiledDictionary
from ..ig.names import bundle_profile_url, profile_url
from ..logic import parse
from .values import BadValue, dar_concept, dar_extension, epoch_period, parse_number

SUBJECT_TYPES = {"Observation", "Condition", "Procedure", "MedicationAdministration", "DiagnosticReport"}


_NS_BYTES = NAMESPACE.bytes


def resource_uuid(use_case: str, record_id: str, slot: str | None = None) -> str:
    """Deterministic UUIDv5: same use case, record and slot give the same id on every run and machine.

    Equal to ``str(uuid.uuid5(NAMESPACE, name))`` (a test checks it), computed without building UUID objects:
    a bundle needs ~50 of them and the stdlib path was a fifth of the FHIR stage's time.
    """
    name = f"{use_case}/{record_id}" if slot is None else f"{use_case}/{record_id}/{slot}"
    return _format_uuid5(hashlib.sha1(_NS_BYTES + name.encode("utf-8")).digest())  # noqa: S324 (v5 is SHA-1)


@dataclass(slots=True)
class Built:
    """The result for one record: a bundle, or the reason it could not be built."""

    row: int
    record_id: str
    bundle: dict[str, Any] | None
    reason: str | None = None
    #: The id the bundle carries (Patient.identifier, resource ids, file name): the pseudonym when pseudonymising.
    patient_key: str = ""


class _Absent(Exception):
    """Raised inside element builders when an element is not applicable (hidden by branching logic)."""


class BundleBuilder:
    """Turns the records of one center into bundles, following a compiled dictionary."""

    #: Distinct input combinations remembered per slot before the memo is reset (bounds memory on free numbers).
    MEMO_LIMIT = 20000

    def __init__(
        self,
        compiled: CompiledDictionary,
        identifier_system: str,
        pseudonymize: Callable[[str], str] | None = None,
        canonical: str | None = None,
    ) -> None:
        """``pseudonymize`` maps a record id to the id the bundle carries instead (Patient.identifier, every
        resource id and the file name), so the hospital's id never leaves; without it the record id is used.
        ``canonical``: the IG's base URL; every resource and the Bundle then claim their generated profile in
        ``meta.profile`` (docs/ig.md); None claims none."""
        self.dd = compiled
        uc = compiled.use_case
        # built once: memoised resource bodies share these dicts (read-only, like every nested element)
        self._meta = (
            {res["id"]: {"profile": [profile_url(canonical, uc, res["id"])]} for res in compiled.resources}
            if canonical
            else {}
        )
        self._bundle_meta: dict[str, Any] = {"source": f"urn:oncofhir:dictionary:{uc}:{compiled.version}"}
        if canonical:
            self._bundle_meta["profile"] = [bundle_profile_url(canonical, uc)]
        self.identifier_system = identifier_system
        self.pseudonymize = pseudonymize
        self.fields = compiled.fields
        # A resource's body depends only on the values of the variables it reads (and their visibility): codes
        # repeat across patients, so each distinct combination is built once and reused with the patient's id
        # and subject. This is what makes a bundle cost microseconds, not milliseconds.
        self._slot_vars = {res["id"]: tuple(sorted(_variables(res))) for res in compiled.resources}
        self._memo: dict[str, dict[tuple[Any, ...], Any]] = {res["id"]: {} for res in compiled.resources}

    # -- vectorised pre-computation ------------------------------------------------------------------------
    def _masks(
        self, columns: Mapping[str, Sequence[str]], n: int
    ) -> tuple[dict[str, list[bool]], dict[str, list[bool]]]:
        """Branching visibility per variable and emission mask per resource, over all records at once."""
        cache: dict[str, np.ndarray] = {}

        def ev(text: str) -> np.ndarray:
            if text not in cache:
                cache[text] = np.asarray(parse(text).evaluate(columns), dtype=bool)
            return cache[text]

        shown = {name: ev(f.branching).tolist() for name, f in self.fields.items() if f.branching}
        when: dict[str, list[bool]] = {}
        for res in self.dd.resources:
            mask = np.ones(n, dtype=bool)
            for text in res["when"]:
                mask &= ev(text)
            when[res["id"]] = mask.tolist()
        return shown, when

    def build(
        self, rows: Sequence[Mapping[str, str]], columns: Mapping[str, Sequence[str]], row_numbers: Sequence[int]
    ) -> Iterator[Built]:
        """Yield one :class:`Built` per input row, in input order; never raises for a bad record.

        Bundles share nested elements with each other (memoised resource bodies): treat them as read-only.
        """
        n = len(rows)
        shown, when = self._masks(columns, n)
        rid_col = self.dd.record_id
        vis_names = list(shown)
        vis_lists = [shown[name] for name in vis_names]
        vis_index = {name: k for k, name in enumerate(vis_names)}
        plans = [self._plan(res, when[res["id"]], vis_index) for res in self.dd.resources]
        blank = dict.fromkeys(self.fields, "")
        pseudonymize = self.pseudonymize
        for i, rec in enumerate(rows):
            record_id = rec.get(rid_col, "")
            try:
                key = pseudonymize(record_id) if pseudonymize else record_id
                if len(rec) < len(blank):  # plan key getters read every dictionary column
                    rec = blank | dict(rec)
                vis = tuple(lst[i] for lst in vis_lists)
                bundle = self._bundle(rec, key, vis, vis_names, plans, i)
            except Exception as exc:  # one bad record must never abort the center
                yield Built(row_numbers[i], record_id, None, f"could not build bundle: {type(exc).__name__}: {exc}")
                continue
            yield Built(row_numbers[i], record_id, bundle, None, key)

    # -- one record ---------------------------------------------------------------------------------------
    def _plan(self, res: dict[str, Any], when: list[bool], vis_index: dict[str, int]) -> tuple[Any, ...]:
        """Per-slot constants for the record loop: emission mask, memo key getters, id suffix."""
        names = self._slot_vars[res["id"]]
        value_key = operator.itemgetter(*names) if names else _no_key
        vis_pos = [vis_index[v] for v in names if v in vis_index]
        vis_key = operator.itemgetter(*vis_pos) if vis_pos else _no_key
        omit_if_blank = res["primary"] if res["primary"] and res["if_blank"] == "omit" else None
        return (res, when, value_key, vis_key, omit_if_blank, f"/{res['id']}".encode(), self._memo[res["id"]])

    def _bundle(
        self,
        rec: Mapping[str, str],
        patient_key: str,
        vis: tuple[bool, ...],
        vis_names: list[str],
        plans: list[tuple[Any, ...]],
        i: int,
    ) -> dict[str, Any]:
        uc = self.dd.use_case
        ids = _IdMaker(uc, patient_key)
        subject = {"reference": "urn:uuid:" + ids(b"/patient")}
        ctx: _Record | None = None
        entries: list[dict[str, Any]] = []
        emitted: dict[str, str] = {}
        deferred: list[tuple[dict[str, Any], bytes]] = []
        for res, when, value_key, vis_key, omit_if_blank, suffix, memo in plans:
            if not when[i]:
                continue
            if omit_if_blank and not rec[omit_if_blank]:
                continue
            rtype = res["type"]
            if rtype == "DiagnosticReport":
                deferred.append((res, suffix))
                continue
            key = (value_key(rec), vis_key(vis))
            template = memo.get(key, _MISSING) if rtype != "Patient" else _MISSING
            if template is _MISSING:
                if ctx is None:
                    ctx = _Record(rec, dict(zip(vis_names, vis, strict=True)), self.fields, _SUBJECT)
                try:
                    template = {"resourceType": rtype, "id": None, **self._meta_of(res["id"])}
                    template.update(self._resource(res, ctx, patient_key))
                except _Absent:
                    template = None
                if rtype != "Patient":  # the Patient carries the patient's id: never shared
                    if len(memo) >= self.MEMO_LIMIT:
                        memo.clear()
                    memo[key] = template
            if template is None:  # a required element is hidden by branching logic: the resource does not apply
                continue
            rid = ids(suffix)
            body = template.copy()  # shallow: nested elements are shared, read-only (documented on build())
            body["id"] = rid
            if "subject" in body:
                body["subject"] = subject
            entries.append({"fullUrl": "urn:uuid:" + rid, "resource": body})
            emitted[res["id"]] = rid
        for res, suffix in deferred:
            refs = [{"reference": "urn:uuid:" + emitted[s]} for s in res["elements"]["result"] if s in emitted]
            if not refs:
                continue
            rid = ids(suffix)
            report = self._diagnostic_report(res, rid, subject, refs)
            if res["id"] in self._meta:
                report = {"resourceType": "DiagnosticReport", "id": rid, "meta": self._meta[res["id"]], **report}
            entries.append({"fullUrl": "urn:uuid:" + rid, "resource": report})
        return {
            "resourceType": "Bundle",
            "id": ids(b""),
            "meta": self._bundle_meta,
            "type": "collection",
            "entry": entries,
        }

    def _meta_of(self, slot: str) -> dict[str, Any]:
        meta = self._meta.get(slot)
        return {"meta": meta} if meta else {}

    def _resource(self, res: dict[str, Any], ctx: _Record, patient_key: str) -> dict[str, Any]:
        """Build the elements of one resource (without resourceType and id; subject is a placeholder)."""
        rtype, el = res["type"], res["elements"]
        out: dict[str, Any] = {}
        notes: list[str] = [res["note"]] if res.get("note") else []
        if rtype == "Patient":
            out["identifier"] = [{"system": self.identifier_system, "value": patient_key}]
            if "gender" in el:
                g = ctx.status(el["gender"], None)
                if g is not None:
                    out["gender"] = g
            if "deceased" in el:
                d = ctx.status(el["deceased"], None)
                if isinstance(d, bool):
                    out["deceasedBoolean"] = d
            return out
        if rtype == "Observation":
            out["status"] = "final"
            if "category" in el:
                out["category"] = [{"coding": [el["category"]["coding"]]}]
            out["code"] = ctx.concept(el["code"], notes)
            out["subject"] = ctx.subject
            if "effective" in el:
                ctx.put(out, "effectivePeriod", lambda: ctx.period(el["effective"]))
            if "value" in el:
                ctx.observation_value(out, el["value"], notes)
            for key in ("interpretation", "bodySite", "method"):
                if key in el:
                    ctx.put(out, key, lambda k=key: ctx.concept(el[k], notes), wrap=key == "interpretation")
            comps = out.pop("component", [])
            for comp in el.get("components", []):
                c: dict[str, Any] = {"code": {"coding": [comp["code"]]}}
                try:
                    ctx.observation_value(c, comp["value"], notes)
                except _Absent:
                    continue
                comps.append(c)
            if comps:
                out["component"] = comps
        elif rtype == "Condition":
            for key in ("clinicalStatus", "verificationStatus"):
                if key in el:
                    ctx.put(out, key, lambda k=key: ctx.concept(el[k], notes))
                    if key in out and "coding" not in out[key]:  # required binding, no "unknown" code: omit
                        del out[key]
            if "category" in el:
                out["category"] = [{"coding": [el["category"]["coding"]]}]
            out["code"] = ctx.concept(el["code"], notes)
            if "bodySite" in el:
                ctx.put(out, "bodySite", lambda: ctx.concept(el["bodySite"], notes), wrap=True)
            out["subject"] = ctx.subject
            if "onsetAge" in el:
                ctx.put(out, "onsetAge", lambda: ctx.quantity(el["onsetAge"], positive=True))
            evidence = []
            for src in el.get("evidence", []):
                try:
                    evidence.append({"code": [ctx.concept(src, notes)]})
                except _Absent:
                    continue
            if evidence:
                out["evidence"] = evidence
        elif rtype == "Procedure":
            out["status"] = ctx.status(el["status"], "unknown")
            out["code"] = ctx.concept(el["code"], notes)
            out["subject"] = ctx.subject
            if "performed" in el:
                ctx.put(out, "performedPeriod", lambda: ctx.period(el["performed"]))
            if "bodySite" in el:
                ctx.put(out, "bodySite", lambda: ctx.concept(el["bodySite"], notes), wrap=True)
        elif rtype == "MedicationAdministration":
            out["status"] = ctx.status(el["status"], "unknown")
            out["medicationCodeableConcept"] = ctx.concept(el["medication"], notes)
            out["subject"] = ctx.subject
            if "effective" in el:
                try:
                    out["effectivePeriod"] = ctx.period(el["effective"])
                except _Absent:
                    out["effectivePeriod"] = dar_extension("not-applicable")
            else:
                out["effectivePeriod"] = dar_extension("unknown")
            dosage = self._dosage(el.get("dosage", {}), ctx)
            if dosage:
                out["dosage"] = dosage
        if notes:
            out["note"] = [{"text": t} for t in dict.fromkeys(notes)]
        return out

    @staticmethod
    def _dosage(spec: dict[str, Any], ctx: _Record) -> dict[str, Any]:
        dosage: dict[str, Any] = {}
        if "dose" in spec:
            ctx.put(dosage, "dose", lambda: ctx.quantity(spec["dose"]))
        if "rate" in spec:
            ratio: dict[str, Any] = {}
            ctx.put(ratio, "numerator", lambda: ctx.quantity(spec["rate"]["numerator"]))
            ctx.put(ratio, "denominator", lambda: ctx.quantity(spec["rate"]["denominator"]))
            if len(ratio) == 1:  # rat-1: both parts or neither; the hidden part is explicitly not applicable
                ratio.setdefault("numerator", dar_extension("not-applicable"))
                ratio.setdefault("denominator", dar_extension("not-applicable"))
            if ratio:
                dosage["rateRatio"] = ratio
        return dosage

    @staticmethod
    def _diagnostic_report(
        res: dict[str, Any], rid: str, subject: dict[str, str], refs: list[dict[str, str]]
    ) -> dict[str, Any]:
        el = res["elements"]
        out: dict[str, Any] = {"resourceType": "DiagnosticReport", "id": rid}
        status = el.get("status") or {"kind": "fixed", "code": "final"}
        out["status"] = status["code"]
        if "category" in el:
            out["category"] = [{"coding": [el["category"]["coding"]]}]
        out["code"] = {"coding": [el["code"]["coding"]]}
        out["subject"] = subject
        out["result"] = refs
        if res.get("note"):
            out["conclusion"] = res["note"]
        return out


class _Record:
    """Per-record value access implementing the one missing-data rule (docs/dictionary-format.md)."""

    __slots__ = ("fields", "rec", "subject", "visible")

    def __init__(
        self, rec: Mapping[str, str], visible: dict[str, bool], fields: Mapping[str, Any], subject: dict[str, str]
    ) -> None:
        self.rec = rec
        self.visible = visible
        self.fields = fields
        self.subject = subject

    def raw(self, variable: str) -> str:
        """The value, or raise _Absent when branching logic hides the field (not applicable)."""
        if not self.visible.get(variable, True):
            raise _Absent(variable)
        return self.rec.get(variable, "")

    @staticmethod
    def put(target: dict[str, Any], key: str, make: Any, wrap: bool = False) -> None:
        """Set ``target[key] = make()`` unless the element is not applicable."""
        try:
            value = make()
        except _Absent:
            return
        target[key] = [value] if wrap else value

    @staticmethod
    def _lookup(mapping: Mapping[str, Any], value: str) -> tuple[bool, Any]:
        if value in mapping:
            return True, mapping[value]
        m = _TRAILING_ZEROS.match(value)  # tolerate "1.0" for code 1 (spreadsheet round-trips); QC still flags it
        if m and m.group(1) in mapping:
            return True, mapping[m.group(1)]
        return False, None

    def concept(self, src: dict[str, Any], notes: list[str]) -> dict[str, Any]:
        """A CodeableConcept from a fixed or coded source; blank or invalid -> data-absent-reason extension."""
        if src["kind"] == "fixed":
            return {"coding": [src["coding"]]}
        value = self.raw(src["variable"])
        if not value:
            return dar_extension("unknown")
        found, entry = self._lookup(src["map"], value)
        if not found:
            return dar_extension("error")
        if entry is None or entry.get("coding") is None:
            return dar_extension("unknown")
        if entry.get("note"):
            notes.append(entry["note"])
        if entry.get("text"):
            return {"coding": [entry["coding"]], "text": entry["text"]}
        return {"coding": [entry["coding"]]}

    def observation_value(self, out: dict[str, Any], src: dict[str, Any], notes: list[str]) -> None:
        """Observation.value[x] (or a component's): coded, quantity, or dataAbsentReason."""
        if src["kind"] == "quantity":
            try:
                out["valueQuantity"] = self._quantity_value(src)
            except BadValue as exc:
                out["dataAbsentReason"] = dar_concept("error", f"{src['variable']}: {exc}")
            except _Blank:
                out["dataAbsentReason"] = dar_concept("unknown")
            return
        if src["kind"] == "fixed":
            out["valueCodeableConcept"] = {"coding": [src["coding"]]}
            return
        value = self.raw(src["variable"])
        if not value:
            out["dataAbsentReason"] = dar_concept("unknown")
            return
        found, entry = self._lookup(src["map"], value)
        if not found:
            out["dataAbsentReason"] = dar_concept("error", f"{src['variable']}: '{value}' is not a permissible value")
            return
        if entry is None:
            out["dataAbsentReason"] = dar_concept("unknown")
            return
        if entry.get("coding") is not None:
            out["valueCodeableConcept"] = {"coding": [entry["coding"]]}
            if entry.get("text"):
                out["valueCodeableConcept"]["text"] = entry["text"]
        if entry.get("components"):
            out["component"] = [
                {"code": {"coding": [c["code"]]}, "valueCodeableConcept": {"coding": [c["value"]]}}
                for c in entry["components"]
            ]
        if entry.get("note"):
            notes.append(entry["note"])

    def _number(self, variable: str) -> int | float:
        value = self.raw(variable)
        if not value:
            raise _Blank(variable)
        field = self.fields.get(variable)
        integer = field is not None and field.validation == "integer"
        number = parse_number(value, integer=integer)
        if field is not None:
            lo, hi = field.min, field.max
            if (lo and number < float(lo)) or (hi and number > float(hi)):
                raise BadValue(f"{number} is outside the range {lo or '-inf'}..{hi or 'inf'}")
        return number

    def _quantity_value(self, src: dict[str, Any], positive: bool = False) -> dict[str, Any]:
        number = self._number(src["variable"])
        if positive and number <= 0:
            raise BadValue(f"{number} is not positive")
        q: dict[str, Any] = {"value": number}
        unit = src["unit"]
        if unit["kind"] == "fixed":
            coding = unit["coding"]
        else:
            try:
                unit_value = self.raw(unit["variable"])
            except _Absent:
                unit_value = ""
            found, entry = self._lookup(unit["map"], unit_value) if unit_value else (False, None)
            if not found or entry is None:
                systems = {e["coding"]["system"] for e in unit["map"].values() if e and e.get("coding")}
                if len(systems) == 1:  # qty-3: a code (even an absent one) needs its system
                    q["system"] = systems.pop()
                q["_code"] = dar_extension("error" if unit_value else "unknown")
                return q
            coding = entry["coding"]
        q["unit"] = coding["display"]
        q["system"] = coding["system"]
        q["code"] = coding["code"]
        return q

    def quantity(self, src: dict[str, Any], positive: bool = False) -> dict[str, Any]:
        """A Quantity/Age element, or the data-absent-reason extension when blank or invalid."""
        try:
            return self._quantity_value(src, positive)
        except _Blank:
            return dar_extension("unknown")
        except BadValue:
            return dar_extension("error")

    def period(self, src: dict[str, Any]) -> dict[str, Any]:
        """An anonymised epoch period, or the data-absent-reason extension when blank or invalid."""
        try:
            return epoch_period(self._number(src["variable"]), src["unit"])
        except _Blank:
            return dar_extension("unknown")
        except BadValue:
            return dar_extension("error")

    def status(self, src: dict[str, Any], default: Any) -> Any:
        """A FHIR code (or boolean) from a fixed value or a status map; hidden, blank, invalid -> ``default``."""
        if src["kind"] == "fixed":
            return src["code"]
        try:
            value = self.raw(src["variable"])
        except _Absent:
            return default
        found, entry = self._lookup(src["map"], value) if value else (False, None)
        return entry if found and entry is not None else default


class _Blank(Exception):
    """A numeric field is blank."""


#: Placeholder for ``subject`` inside memoised resource bodies; replaced by the patient's reference.
_SUBJECT: dict[str, str] = {"reference": "urn:oncofhir:subject-placeholder"}


class _IdMaker:
    """Deterministic ids for one patient, hashing the shared ``<use case>/<patient key>`` prefix only once.

    The key is the pseudonym when pseudonymising: a UUIDv5 under a public namespace of the hospital's id could be
    recomputed by anyone holding that id, which would link the deposited bundle back to it.
    """

    __slots__ = ("base",)

    def __init__(self, use_case: str, patient_key: str) -> None:
        self.base = hashlib.sha1(_NS_BYTES + f"{use_case}/{patient_key}".encode())  # noqa: S324 (v5 is SHA-1)

    def __call__(self, suffix: bytes) -> str:
        """The id of ``<use case>/<record id><suffix>`` (suffix ``b"/<slot>"``, or ``b""`` for the bundle)."""
        h = self.base.copy()
        h.update(suffix)
        return _format_uuid5(h.digest())


_VARIANT = {c: "89ab"[int(c, 16) & 0x3] for c in "0123456789abcdef"}


def _format_uuid5(digest: bytes) -> str:
    """RFC 4122 text of a version-5 UUID from the first 16 bytes of its SHA-1 digest."""
    x = digest[:16].hex()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


_MISSING = object()
_TRAILING_ZEROS = re.compile(r"^(-?\d+)\.0+$")


def _no_key(_: Any) -> tuple[()]:
    return ()


def _variables(node: Any) -> set[str]:
    """Every variable a compiled resource plan reads (its memo key)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"variable", "primary"} and isinstance(value, str):
                found.add(value)
            else:
                found |= _variables(value)
    elif isinstance(node, list):
        for item in node:
            found |= _variables(item)
    return found
