"""Safe output writing: owner-only permissions for plaintext patient data, atomic replacement, safe names.

Patient data is personal data: every plaintext file oncofhir writes is created 0600 inside 0700 folders, and
appears under its final name only when complete, so a killed job never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o600
DIR_MODE = 0o700
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and make the leaf owner-only."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


@contextlib.contextmanager
def private_writer(path: str | Path, mode: int = FILE_MODE) -> Iterator[BinaryIO]:
    """A binary handle on a temp file next to ``path`` (0600 by default), renamed to ``path`` only if the block
    completes.

    For outputs written piece by piece (a center's NDJSON): memory stays O(one record), and a killed or failed
    job leaves the previous file or none, never a truncated one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: str | Path, data: bytes) -> None:
    """Write ``data`` atomically (temp file + rename) with mode 0600."""
    with private_writer(path) as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a small, non-personal text file (reports, compiled dictionaries) atomically, creating its folder.

    The usual umask applies (mode 0666 before it), as for any file a user shares."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with private_writer(path, 0o666) as handle:
        handle.write(text.encode("utf-8"))


def safe_stem(record_id: str) -> str:
    """A file name stem for a record id that is safe on every file system, whatever the id contains.

    Plain ids (letters, digits, ``._-``, not starting with a dot, not a Windows device name) are kept so data
    managers recognise their files; anything else becomes ``rid-<sha256 prefix>`` and never a path.
    """
    if _SAFE_STEM.match(record_id) and record_id.split(".", 1)[0].lower() not in _RESERVED:
        return record_id
    return "rid-" + hashlib.sha256(record_id.encode("utf-8")).hexdigest()[:24]
