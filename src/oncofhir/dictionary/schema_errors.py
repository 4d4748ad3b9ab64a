"""Readable messages for mapping.yaml schema errors.

A resource slot is one of six forms (Patient, Observation, …) and a value source one of three (concept, coded,
quantity), written as ``oneOf`` in the schema. jsonschema reports a mistake inside one of them as "does not match
any of the alternatives" and leaves the choice of the meant alternative to us; picking the wrong one sends the user
looking for a ``'Patient' was expected`` in an Observation. So the alternative is chosen by what the entry says it
is (a slot's ``type``; the shape of a source: a string or a mapping; the keys it has), and the message names the
offending key or value, where it is, and what is allowed there, with the nearest allowed spelling.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema is imported by the compiler when it validates
    from jsonschema.exceptions import ValidationError

#: Errors that say the entry is of another shape than the alternative: the alternative is not the one meant.
_SHAPE = {"type", "const"}


def _nearest(word: Any, allowed: list[str]) -> str | None:
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.5)
    if not close:
        close = [a for a in allowed if a.casefold() == word.casefold()]
    return close[0] if close else None


def _hint(word: Any, allowed: list[str]) -> str:
    near = _nearest(word, allowed)
    return f" (did you mean '{near}'?)" if near else ""


def _allowed_keys(err: ValidationError) -> list[str]:
    return list((err.schema or {}).get("properties", {}))


def _unknown_keys(err: ValidationError) -> list[str]:
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        return [k for k in err.instance if k not in _allowed_keys(err)]
    if err.validator == "enum" and "propertyNames" in err.relative_schema_path:
        return [err.instance]
    return []


def _choose(err: ValidationError) -> list[ValidationError]:
    """The errors of the alternative of a oneOf/anyOf the entry most plausibly meant."""
    by_alt: dict[int, list[ValidationError]] = {}
    for sub in err.context or []:
        by_alt.setdefault(sub.relative_schema_path[0], []).append(sub)

    def score(item: tuple[int, list[ValidationError]]) -> tuple[int, float, int]:
        _, errors = item
        shape = sum(1 for e in errors if e.validator in _SHAPE and len(e.relative_path) <= 1)
        similarity = 0.0
        for e in errors:
            allowed = list(e.validator_value) if e.validator == "enum" else _allowed_keys(e)
            for key in _unknown_keys(e):
                similarity = max(
                    similarity,
                    max((difflib.SequenceMatcher(None, key, a).ratio() for a in allowed), default=0.0),
                )
        return (shape, -similarity, len(errors))

    best = min(by_alt.items(), key=score)[1] if by_alt else []
    return [] if score((0, best))[0] else best  # no alternative has the entry's shape: report the oneOf itself


def leaf_errors(err: ValidationError) -> Iterator[ValidationError]:
    """The errors to report for ``err``: itself, or those of the meant alternative, recursively."""
    chosen = _choose(err) if err.validator in {"oneOf", "anyOf"} and err.context else []
    if chosen:
        for sub in chosen:
            yield from leaf_errors(sub)
    else:
        yield err


def message(err: ValidationError) -> str:
    """One line for a leaf error: the offending key or value, what is allowed there, the nearest allowed spelling."""
    if err.validator == "enum" and "propertyNames" in err.relative_schema_path:
        allowed = [str(a) for a in err.validator_value]
        return f"unknown key '{err.instance}'{_hint(err.instance, allowed)}; allowed keys: {', '.join(allowed)}"
    if err.validator == "additionalProperties":
        allowed = _allowed_keys(err)
        keys = _unknown_keys(err)
        parts = [f"unknown key '{k}'{_hint(k, allowed)}" for k in keys]
        return f"{'; '.join(parts)}; allowed keys: {', '.join(allowed)}"
    if err.validator == "enum":
        allowed = [str(a) for a in err.validator_value]
        return f"{err.instance!r} is not one of {', '.join(allowed)}{_hint(err.instance, allowed)}"
    if err.validator == "required":
        return err.message.replace("is a required property", "is required")
    if err.validator in {"oneOf", "anyOf"}:
        shown = repr(err.instance) if len(repr(err.instance)) < 60 else repr(err.instance)[:60] + "…"
        forms = sorted({str(e.validator_value) for e in err.context or [] if e.validator == "type" and not e.path})
        return f"{shown} has none of the allowed forms" + (f" ({' or '.join(forms)})" if forms else "")
    msg = err.message
    return msg if len(msg) < 240 else msg[:240] + "…"


def suppressed(err: ValidationError, siblings: list[ValidationError]) -> bool:
    """A "missing key X" when the same entry has an unknown key whose nearest spelling is X, or a "none of the
    allowed forms" when a more precise error inside the entry says why (a misspelt ``type``): one mistake, one line."""
    if err.validator in {"oneOf", "anyOf"}:
        here = list(err.absolute_path)
        return any(o is not err and list(o.absolute_path)[: len(here)] == here for o in siblings)
    if err.validator != "required":
        return False
    missing = {k for k in err.validator_value if isinstance(err.instance, dict) and k not in err.instance}
    for other in siblings:
        if other is err or list(other.absolute_path) != list(err.absolute_path):
            continue
        allowed = list(other.validator_value) if other.validator == "enum" else _allowed_keys(other)
        if any(_nearest(k, allowed) in missing for k in _unknown_keys(other)):
            return True
    return False
