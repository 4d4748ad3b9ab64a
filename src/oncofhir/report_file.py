"""One self-contained HTML file with the run report, the QC index, every center's QC page and the lists they link
to: what ``snakemake --report report.html`` (or ``report.zip``) embeds.

Why one file: Snakemake's single-file report embeds each result as a data URI and refuses folders, and a data URI
cannot resolve the relative links between the pages under ``results/``. Here every page becomes a section of one
document (``<section id="qc-uc1-hospital_a-report-html">``), every link between pages an in-page anchor, and every
list (send-back list, rejects, validation issues, manifests) a table in a collapsed ``<details>`` section. Ids inside
a page get the section's id as prefix (``qc-uc1-hospital_a-report-html--failures``), so the filter boxes of several
QC pages stay apart; one copy of the offline filter script serves them all. Links to a center's ``failures.tsv``
go to the same failures, filterable, on its QC page (``SAME_AS``), not to a copy. The deposit manifests are not
copied either (``kept``): their checksums are for the EGA upload, not for reading, change with every encryption
(Crypt4GH is randomised, so the report would differ between two runs of the same data), and at ~440 bytes a patient
they would be the largest part; their links go to a short section naming the file and its number of rows.

Why rewrite the rendered pages rather than render them again: the QC center page is streamed by the ``qc`` stage
from its chunk state (every failure), which no later job has. The pages are read with the standard library's HTML
tokenizer (:mod:`html.parser`), not patterns, and copied token by token: text and markup stay as they were, except
link and id attributes, and the pages' own ``<script>`` elements (the one filter script is added once). The frame
and the list tables are the Jinja2 templates of :mod:`oncofhir.pages` (``report_file.html.j2``).
"""

from __future__ import annotations

import csv
import html
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markupsafe import Markup

from .errors import InputDataError
from .io_utils import clean_stale, private_writer
from .pages import stream

#: Files another part of the report already shows whole: a link to a path matching the pattern goes to the
#: replacement (``path#id``) instead of to a copy. The pages link to each, so both are the same rows.
SAME_AS = [(re.compile(r"(?P<folder>qc/[^/]+/[^/]+)/failures\.tsv"), r"\g<folder>/report.html#failures")]
#: Attributes holding an id of the page (or, for ``data-filter``, naming one): prefixed per section.
ID_ATTRS = frozenset({"id", "data-filter", "for", "aria-labelledby", "aria-describedby"})
CHUNK = 1 << 20  # characters of a page parsed at a time: a 20,000-patient QC page is never held whole


def anchor(relative: str) -> str:
    """The section id of a file at ``relative`` (POSIX path below the results folder): ``qc/uc1/a/report.html`` ->
    ``qc-uc1-a-report-html``."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", relative).strip("-")


@dataclass(frozen=True)
class _Section:
    id: str
    path: str  # below the results folder
    title: str


class _PageCopy(HTMLParser):
    """Copies the body of one page, links rewritten to in-page anchors and ids prefixed with its section id."""

    def __init__(self, section: _Section, targets: dict[str, str], missing: list[str]) -> None:
        super().__init__(convert_charrefs=False)  # entities come back as written: the text is copied unchanged
        self.section, self.targets, self.missing = section, targets, missing
        self.out: list[str] = []
        self.in_body = False
        self.in_script = False

    def _keep(self) -> bool:
        return self.in_body and not self.in_script

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], close: str) -> str:
        if not any(name == "href" or name in ID_ATTRS for name, _ in attrs):
            return self.get_starttag_text() or ""
        parts = [tag]
        for name, value in attrs:
            if value is not None and name in ID_ATTRS:
                value = f"{self.section.id}--{value}"
            elif value is not None and name == "href":
                value = self._href(value)
                if value is None:
                    continue
            parts.append(name if value is None else f'{name}="{html.escape(value, quote=True)}"')
        return f"<{' '.join(parts)}{close}>"

    def _href(self, href: str) -> str | None:
        """The in-file anchor for a link; external links unchanged; None (link dropped) for a file not in it."""
        if href.startswith("#"):
            return f"#{self.section.id}--{href[1:]}"
        split = urlsplit(href)
        if split.scheme or split.netloc:
            return href
        target = posixpath.normpath(posixpath.join(posixpath.dirname(self.section.path), unquote(split.path)))
        if target in self.targets:
            section = self.targets[target]
            return f"#{section}--{split.fragment}" if split.fragment else f"#{section}"
        for pattern, replacement in SAME_AS:
            if pattern.fullmatch(target):
                path, _, element = pattern.sub(replacement, target).partition("#")
                if path in self.targets:
                    return f"#{self.targets[path]}--{element}" if element else f"#{self.targets[path]}"
        self.missing.append(f"{self.section.path}: {href}")
        return None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.in_body = True
        elif tag == "script":
            self.in_script = True
        elif self._keep():
            self.out.append(self._tag(tag, attrs, ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._keep():
            self.out.append(self._tag(tag, attrs, "/"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.in_body = False
        elif tag == "script":
            self.in_script = False
        elif self._keep():
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self._keep():
            self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        if self._keep():
            self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if self._keep():
            self.out.append(f"&#{name};")


class _Title(HTMLParser):
    """The text of a page's first ``<title>`` (the head's, not an SVG chart's)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.done, self.text = False, False, ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.inside = tag == "title" and not self.done

    def handle_endtag(self, tag: str) -> None:
        self.done = self.done or self.inside
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text += data


def _title(path: Path) -> str:
    """A page's ``<title>``, from its head (the first 64 KB)."""
    with open(path, encoding="utf-8") as handle:
        parser = _Title()
        parser.feed(handle.read(1 << 16))
    return parser.text.strip() or path.name


def _body(path: Path, section: _Section, targets: dict[str, str], missing: list[str]) -> Iterator[Markup]:
    copy = _PageCopy(section, targets, missing)
    with open(path, encoding="utf-8") as handle:
        while chunk := handle.read(CHUNK):
            copy.feed(chunk)
            yield Markup("".join(copy.out))  # noqa: S704 (copied from a page made by our templates)
            copy.out.clear()
    copy.close()
    yield Markup("".join(copy.out))  # noqa: S704 (as above)


def _list(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return (rows[0], rows[1:]) if rows else ([], [])


def _rows(path: Path) -> int:
    with open(path, "rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def write_report_file(
    pages: Sequence[str | Path],
    lists: Sequence[str | Path],
    results: str | Path,
    out: str | Path,
    kept: Sequence[str | Path] = (),
) -> str:
    """Write ``out``: the ``pages`` (run report first) as sections, then the ``lists`` as tables, then a line for each
    ``kept`` file (linked, not copied: its name and number of rows); every path below ``results``.

    The file is owner-only (0600, folders 0700), as the QC pages and lists name record ids. A link to a file that is
    neither in it nor in ``SAME_AS`` is dropped (its text stays) and logged; returns a one-line summary for the log.
    """
    root = Path(results).resolve()

    def below(path: str | Path) -> str:
        try:
            return Path(path).resolve().relative_to(root).as_posix()
        except ValueError:
            raise InputDataError(f"{path}: a report page or list must be inside the results folder {root}") from None

    page_sections = [_Section(anchor(rel), rel, _title(Path(p))) for p, rel in ((p, below(p)) for p in pages)]
    list_sections = [_Section(anchor(rel), rel, rel) for rel in map(below, lists)]
    kept_sections = [_Section(anchor(rel), rel, rel) for rel in map(below, kept)]
    targets = {s.path: s.id for s in [*page_sections, *list_sections, *kept_sections]}
    missing: list[str] = []
    sections = [
        {"id": s.id, "title": s.title, "body": _body(Path(p), s, targets, missing)}
        for p, s in zip(pages, page_sections, strict=True)
    ]
    tables = []
    versions: dict[str, str] = {}
    for path, s in zip(lists, list_sections, strict=True):
        header, rows = _list(Path(path))
        tables.append({"id": s.id, "title": s.title, "header": header, "rows": rows})
        if s.path.endswith("run_summary.tsv") and "dictionary_version" in header:  # the frame's dictionary line
            versions = {row[0]: row[header.index("dictionary_version")] for row in rows}
    clean_stale(out)
    with private_writer(out) as handle:
        for part in stream(
            "report_file.html.j2",
            title="oncofhir report",
            dictionaries=versions,
            nav=[],
            sections=sections,
            tables=tables,
            kept=[
                {"id": s.id, "title": s.title, "rows": _rows(Path(p))} for p, s in zip(kept, kept_sections, strict=True)
            ],
        ):
            handle.write(part.encode("utf-8"))
    for link in missing:
        print(f"link to a file not in the report, left as text: {link}")
    return (
        f"{len(sections)} page(s), {len(tables)} list(s) and {len(kept)} file name(s) in {out}, "
        f"{len(missing)} link(s) left as text"
    )
