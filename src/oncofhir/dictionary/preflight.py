"""Check the dictionaries a run will compile before the run starts (the workflow calls this at parse time).

Why: the ``compile_dictionary`` rule is a job like any other, so a broken dictionary used to surface only when
Snakemake reached it, after the demo exports, other use cases' ingest and QC jobs had started, and with the error
in a job log. The brief's rule is that a bad dictionary fails fast, before any work. So the workflow compiles, in
its own process, exactly the use cases whose compiled JSON the run would (re)make: missing, or older than the
dictionary files or an ontology table. An unchanged dictionary costs nothing; a changed one is compiled twice
(here and in its job: about 0.1-0.5 s each), which buys a one-line stop instead of a failed job.

The cross-use-case check (the same answer of a shared variable has the same codes everywhere, issue #12) runs
over all the run's use cases whenever one of them is checked here, since a change to one use case can clash with
another that did not change.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import DictionaryError
from .compiled import CompiledDictionary, load_compiled

SOURCES = ("redcap_dictionary.csv", "mapping.yaml")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")  # a missing source: the compiler names it


def stale(use_case: str, dictionaries: Path, ontology_files: Iterable[Path], compiled_dir: Path) -> bool:
    """Whether the run will compile ``use_case``: its compiled JSON is missing or older than one of its sources."""
    out = compiled_dir / f"{use_case}.json"
    try:
        made = out.stat().st_mtime
    except FileNotFoundError:
        return True
    sources = [dictionaries / use_case / name for name in SOURCES] + list(ontology_files)
    return any(_mtime(p) > made for p in sources)


def preflight(
    use_cases: Iterable[str], dictionaries: str | Path, ontologies: str | Path, compiled_dir: str | Path
) -> list[str]:
    """Compile every stale use case and check shared codes; return the use cases checked.

    Raises :class:`DictionaryError` with every problem of the first use case that does not compile, or every
    shared answer coded differently by two use cases.
    """
    from .compiler import compile_dictionary
    from .consistency import inconsistent_codings

    dictionaries, ontologies, compiled_dir = Path(dictionaries), Path(ontologies), Path(compiled_dir)
    use_cases = sorted(set(use_cases))
    tables = [ontologies / "systems.yaml", *sorted(ontologies.glob("*.tsv"))]
    checked = [uc for uc in use_cases if stale(uc, dictionaries, tables, compiled_dir)]
    if not checked:
        return []
    compiled: list[CompiledDictionary] = []
    for uc in use_cases:
        if uc in checked:
            compiled.append(compile_dictionary(dictionaries / uc, ontologies))
        else:
            compiled.append(load_compiled(compiled_dir / f"{uc}.json"))
    problems = inconsistent_codings(compiled) if len(compiled) > 1 else []
    if problems:
        raise DictionaryError(
            f"the use cases {', '.join(use_cases)} code a shared answer differently (declare `own_coding` on a "
            "variable whose codes are deliberately its own; docs/dictionary-format.md)",
            path=str(dictionaries),
            details=problems,
        )
    return checked
