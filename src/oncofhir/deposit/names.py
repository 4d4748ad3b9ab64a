"""EGA file-name rules, checked before anything is encrypted so a bad name fails the job instead of the upload.

EGA's inbox accepts only Crypt4GH files named ``*.c4gh`` without spaces or any of ``# ? ( ) [ ] / \\ = + < > : ;
" ' , * ^ | &``. We are stricter in ways that only matter for broken input: printable ASCII only (no control
characters, tabs or newlines, which would also break the manifest TSV), no leading dot (hidden files are invisible
to the people checking a submission) and at most 255 bytes (the common file-system limit).
"""

from __future__ import annotations

import re

C4GH_SUFFIX = ".c4gh"
#: Characters EGA forbids in submitted file names (its documented list, plus the space).
EGA_FORBIDDEN = frozenset("#?()[]/\\=+<>:;\"',*^|& ")
MAX_NAME_BYTES = 255


#: Printable ASCII without the forbidden characters, then the suffix: most names are settled by this alone.
_PLAIN = re.compile(r"[!-~]+\.c4gh", re.ASCII)


def ega_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be submitted to the EGA, or None when it can."""
    if (
        _PLAIN.fullmatch(name)
        and not EGA_FORBIDDEN.intersection(name)
        and name[0] != "."
        and len(name) <= MAX_NAME_BYTES
    ):
        return None
    if not name.endswith(C4GH_SUFFIX) or name == C4GH_SUFFIX:
        return f"does not end in '{C4GH_SUFFIX}' after a stem"
    bad = sorted({ch for ch in name if ch in EGA_FORBIDDEN})
    if bad:
        return "contains character(s) EGA forbids: " + " ".join(repr(ch) for ch in bad)
    odd = sorted({ch for ch in name if not (" " < ch < "\x7f")})
    if odd:
        return "contains non-printable or non-ASCII character(s): " + " ".join(repr(ch) for ch in odd)
    if name.startswith("."):
        return "starts with a dot (a hidden file)"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def is_ega_name(name: str) -> bool:
    """True when ``name`` follows the EGA file-name rules (see :func:`ega_name_problem`)."""
    return ega_name_problem(name) is None
