"""The code version of each workflow stage: the package version plus a hash of the stage's source files.

Why: Snakemake reruns a job when its parameters change, but it only tracks a rule's own script, not the package
code the rule calls. Giving every rule that runs oncofhir code a ``code=`` parameter made of the package version and
a SHA-256 over the source files the stage depends on makes an upgrade (or an unreleased edit) rerun exactly the
stages whose code changed, for every center, and nothing else: documentation, tests and other stages' modules are
outside the hash.

Which files a stage depends on: the stage's entry modules (``STAGE_MODULES``, an explicit table) and their import
closure inside ``oncofhir``, found by reading the files' ``import`` lines (no import is executed, so it is cheap
enough for parse time), every import counted, also those inside functions, plus the ``__init__.py`` of
each package on the way, plus the non-Python files a module reads (``MODULE_DATA``: the Jinja2 page templates, the
SUSHI installer).
Three modules are dispatchers whose function-level imports reach every stage: ``oncofhir.cli``,
``oncofhir.pipeline`` and ``oncofhir.views.cli``. They are hashed as files (their own code runs in every stage they
serve) but only their module-level imports are followed; the table names each stage's own modules instead.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from .. import __version__

PACKAGE = "oncofhir"
PACKAGE_DIR = Path(__file__).resolve().parent.parent

#: Modules whose lazy (function-level) imports dispatch to every stage: only their module-level imports count.
DISPATCHERS = frozenset({"oncofhir.cli", "oncofhir.pipeline", "oncofhir.views.cli"})

#: The modules each workflow rule runs (rule name -> entry modules). Rules running the ``oncofhir`` command start at
#: ``oncofhir.cli``; ``script:`` rules at the modules their script imports (Snakemake tracks the script itself).
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "compile_dictionary": ("oncofhir.smk", "oncofhir.pipeline", "oncofhir.dictionary.compiler"),
    "demo_export": ("oncofhir.smk", "oncofhir.demo"),
    "demo_keys": ("oncofhir.smk", "oncofhir.deposit.keys"),
    "split_export": ("oncofhir.smk", "oncofhir.split"),
    "unclaimed_groups": ("oncofhir.smk", "oncofhir.split"),
    "ingest": ("oncofhir.cli", "oncofhir.pipeline", "oncofhir.ingest"),
    "qc": ("oncofhir.cli", "oncofhir.qc"),
    "qc_pool": ("oncofhir.cli", "oncofhir.qc.pool", "oncofhir.deposit.pseudonym"),
    "qc_index": ("oncofhir.smk", "oncofhir.qc"),
    "fhir": (
        "oncofhir.cli",
        "oncofhir.pipeline",
        "oncofhir.deposit.pseudonym",
        "oncofhir.fhir.builder",
        "oncofhir.fhir.writer",
        "oncofhir.views.stage",  # the analysis tables are built in the same job (docs/tables.md#speed)
        "oncofhir.privacy.counts",  # and the privacy counts (docs/provenance.md#re-identification-risk)
    ),
    "bundle_files": ("oncofhir.smk", "oncofhir.fhir.writer"),
    "validate": ("oncofhir.cli", "oncofhir.validate.report"),
    "hl7_validator": ("oncofhir.smk", "oncofhir.validate.hl7"),
    "privacy": ("oncofhir.cli", "oncofhir.privacy.stage"),
    "encrypt": ("oncofhir.cli", "oncofhir.deposit.encrypt", "oncofhir.views.deposit"),
    "manifest": ("oncofhir.smk", "oncofhir.deposit.manifest"),
    "run_summary": (
        "oncofhir.smk",
        "oncofhir.report",
        "oncofhir.privacy.html",
        "oncofhir.ig.report_section",
        "oncofhir.server.html",
    ),
    "implementation_guide": ("oncofhir.cli", "oncofhir.ig.build"),
    "ro_crate": ("oncofhir.smk", "oncofhir.provenance.crate"),
    "report_file": ("oncofhir.smk", "oncofhir.report_file"),
    "views": ("oncofhir.cli", "oncofhir.views.cli", "oncofhir.views.generate"),
    "cohort_db": ("oncofhir.cli", "oncofhir.views.cli", "oncofhir.views.tables", "oncofhir.views.deposit"),
    "fhir_server_load": ("oncofhir.cli", "oncofhir.server.cli", "oncofhir.server.load", "oncofhir.server.searches"),
    "fhir_server_verify": ("oncofhir.cli", "oncofhir.server.cli", "oncofhir.server.verify"),
}

#: Files a module reads at run time besides Python (module -> glob under the package): the page templates decide
#: what every HTML page says, so a stage rendering pages (through ``oncofhir.pages``) hashes them too. All of them:
#: a template may extend or include any other.
MODULE_DATA: dict[str, str] = {
    "oncofhir.pages": "templates/*.j2",
    "oncofhir.ig.pages": "ig/templates/*.j2",
    "oncofhir.ig.install": "ig/install_sushi.sh",  # the pinned SUSHI and core package versions the IG is built with
    "oncofhir.ig.generate": "ig/known-code-systems.txt",  # the systems that get no fragment CodeSystem
}


@cache
def module_path(module: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The source file of an ``oncofhir`` module (a package's ``__init__.py``), or None if there is none."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    if base.is_dir() and (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


_IMPORT = re.compile(
    rb"^(?P<indent>[ \t]*)(?:from[ \t]+(?P<base>\.*[\w.]*)[ \t]+import[ \t]+(?:\((?P<group>[^)]*)\)|(?P<names>[^\n#]*))"
    rb"|import[ \t]+(?P<modules>[^\n#]*))",
    re.MULTILINE,
)


def _resolve(module: str, is_package: bool, base: str) -> str:
    """The absolute name of a ``from <base> import`` in a module (``..x`` relative to the module's package)."""
    level = len(base) - len(base.lstrip("."))
    if level == 0:
        return base
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    rest = base[level:]
    return ".".join([*anchor, *([rest] if rest else [])])


def _names(text: str) -> list[str]:
    """The names of an import list (``a, b as c``)."""
    return [item.split()[0] for item in text.replace("\\", " ").split(",") if item.strip()]


@cache
def _imports(module: str, root: Path) -> tuple[str, ...]:
    """The ``oncofhir`` modules a module imports (candidates: ``from x import y`` may name module x.y).

    Read with a regular expression over the import lines, not ``ast``: ten times faster, and this runs whenever
    Snakemake parses the workflow. An import line inside a string would count too, which only adds a file.
    """
    path = module_path(module, root)
    if path is None:
        return ()
    is_package = path.name == "__init__.py"
    found: list[str] = []
    for match in _IMPORT.finditer(path.read_bytes()):
        if match["indent"] and module in DISPATCHERS:
            continue  # a dispatcher's lazy imports: each stage names its own modules in STAGE_MODULES
        if match["modules"] is not None:
            found += _names(match["modules"].decode())
            continue
        base = _resolve(module, is_package, match["base"].decode())
        found.append(base)
        names = (match["group"] if match["group"] is not None else match["names"]).decode()
        found += [f"{base}.{name}" for name in _names(names)]
    return tuple(name for name in found if name == PACKAGE or name.startswith(PACKAGE + "."))


def closure(entries: tuple[str, ...], root: Path = PACKAGE_DIR) -> list[Path]:
    """Every source file the entry modules need, with the ``__init__.py`` of each enclosing package and the data
    files of ``MODULE_DATA`` (templates), sorted."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen or module_path(module, root) is None:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b first
        todo += _imports(module, root)
    files = {p for m in seen if (p := module_path(m, root)) is not None}
    files.update(data for m in seen if m in MODULE_DATA for data in root.glob(MODULE_DATA[m]) if data.is_file())
    return sorted(files)


@cache
def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stage_code_version(stage: str, root: Path = PACKAGE_DIR) -> str:
    """``<version>+<sha256 prefix>`` of a stage's source files (relative paths and contents, in a fixed order)."""
    if stage not in STAGE_MODULES:
        raise KeyError(f"no code-version entry for workflow rule {stage!r}: add it to STAGE_MODULES")
    digest = hashlib.sha256()
    for path in closure(STAGE_MODULES[stage], root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + _file_digest(path).encode() + b"\n")
    return f"{__version__}+{digest.hexdigest()[:16]}"
