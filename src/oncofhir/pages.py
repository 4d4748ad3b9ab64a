"""The HTML pages (run report, QC index, QC per center) rendered from Jinja2 templates in ``templates/``.

Why templates: every value from an export, a dictionary or the configuration is escaped by the engine
(``autoescape``), not by remembering to call ``html.escape`` at each of hundreds of string joins. Jinja2 is already
installed with Snakemake; oncofhir lists it as its own dependency since the CLI writes the pages too.

Pages stay self-contained (inline CSS, one small inline script to filter long tables, no CDN, nothing fetched):
they hold patient-level drill-down and are read on machines without network access. Each page says when it was
made, by which oncofhir and with which dictionary version(s).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from . import __version__
from .errors import ConfigError

CSS = Markup(
    """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:90em;padding:0 1em;
color:#1d2733;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #d5dbe3}
.sub,.meta{color:#5b6775;margin-top:0}.meta{font-size:.88em}nav{font-size:.9em;margin-bottom:.5em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d5dbe3;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#eef2f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fbeaea}tr.low td{background:#fdf3dc}tr.total td{font-weight:600;background:#f6f8fa}
.flag{color:#8a5a00;font-weight:600}.legend span{display:inline-block;padding:0 .5em;margin-right:.6em;
border:1px solid #d5dbe3}.legend .bad{background:#fbeaea}.legend .low{background:#fdf3dc}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #d5dbe3;border-radius:6px;padding:.6em 1em}
.card b{display:block;font-size:1.4em}.note{color:#5b6775;font-size:.88em}
code{background:#f3f5f7;padding:0 .2em}input[type=search]{font-size:1em;padding:.2em .4em;min-width:22em}
.heat{overflow-x:auto}table.heat td{min-width:1.5em;height:1.5em;padding:0;text-align:center;font-size:.8em}
table.heat td a{display:block;color:#1d2733;text-decoration:none}table.heat td a.f{color:#fff;font-weight:700}
table.heat th{font-size:.8em;padding:.1em .3em}
th.vname{writing-mode:vertical-rl;font-weight:400}.hm-flag{background:#b23b3b;color:#fff}
.dist{display:none;border:2px solid #3d6fa8;padding:.3em 1em;margin:.6em 0}.dist:target{display:block}
td.bar{min-width:16em}td.bar div{height:.7em;background:#3d6fa8}td.bar div.o{background:#8c96a3}
"""
)

#: Filters a table's rows by the text typed in a search box (``data-filter`` names the table): no library, offline.
FILTER_SCRIPT = Markup(
    """
document.querySelectorAll('input[data-filter]').forEach(function(box){
  var table=document.getElementById(box.dataset.filter),count=document.getElementById(box.dataset.filter+'-shown');
  box.addEventListener('input',function(){
    var q=box.value.toLowerCase(),n=0;
    table.querySelectorAll('tbody tr').forEach(function(row){
      var show=!q||row.textContent.toLowerCase().indexOf(q)>=0;row.hidden=!show;if(show){n++;}
    });
    count.textContent=n;
  });
});
"""
)

_ENV = Environment(
    loader=PackageLoader("oncofhir", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def run_date() -> str:
    """Today's date (UTC); with ``SOURCE_DATE_EPOCH`` set (the reproducible-builds convention), that date instead,
    so two runs compared byte for byte (CI's SLURM run against a local one) print the same."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch:
        try:
            moment = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC)
        except (ValueError, OverflowError, OSError):
            raise ConfigError(f"SOURCE_DATE_EPOCH must be seconds since 1970 (an integer), not {epoch!r}") from None
    else:
        moment = datetime.datetime.now(tz=datetime.UTC)
    return moment.date().isoformat()


def dictionary_versions(versions: dict[str, str]) -> str:
    """``dictionary uc3 1.2.0`` for one use case, ``dictionaries uc1 1.0, uc3 1.2.0`` for several."""
    items = ", ".join(f"{uc} {v}" for uc, v in sorted(versions.items()))
    return f"dictionary {items}" if len(versions) == 1 else f"dictionaries {items}" if versions else "no dictionary"


def _context(title: str, dictionaries: dict[str, str], context: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "css": CSS,
        "filter_script": FILTER_SCRIPT,
        "run_date": run_date(),
        "version": __version__,
        "dictionaries": dictionary_versions(dictionaries),
        **context,
    }


def render(template: str, *, title: str, dictionaries: dict[str, str], **context: Any) -> str:
    """A page from ``templates/<template>`` with the shared header (title, run date, version, dictionaries)."""
    return _ENV.get_template(template).render(_context(title, dictionaries, context))


def fragment(template: str, **context: Any) -> Markup:
    """A block of a page (no page head) from ``templates/<template>``, escaped like the pages and marked safe, so a
    page's template places it as it is (the run report's ``sections``)."""
    return Markup(_ENV.get_template(template).render(context))  # noqa: S704 (rendered with autoescape: values escaped)


def stream(template: str, *, title: str, dictionaries: dict[str, str], **context: Any) -> Iterator[str]:
    """As :func:`render`, in pieces as the template produces them: for a page whose context streams (the QC
    center page's failure list), written without holding the page in memory."""
    return _ENV.get_template(template).generate(_context(title, dictionaries, context))
