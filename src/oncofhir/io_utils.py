"""Safe output writing: owner-only permissions for plaintext patient data, atomic replacement, safe names.

Patient data is personal data: every plaintext file oncofhir writes is created 0600 inside 0700 folders, and
appears under its final name only when complete, so a killed job never leaves a half-written file behind.

A job killed outright (SIGKILL, the out-of-memory killer, a node failure) cannot delete its temp file, so temp
files have recognisable names, ``.<name>.oncofhir-tmp-<host>-<pid>`` (a file, or a staging folder for folder
outputs), and are removed by the next writer of the same output and by :func:`sweep_stale` (the workflow runs it
on ``results/`` before any job): only ours, and only stale ones, whose process is gone (docs/output.md).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import BinaryIO

from .errors import ResourceError

FILE_MODE = 0o600
DIR_MODE = 0o700
#: Marks a temp file or staging folder: ``.<name>.oncofhir-tmp-<host>-<pid>``.
TEMP_MARK = ".oncofhir-tmp-"
#: The file that marks the workflow's results root (written by :func:`prepare_results`): inside it every folder
#: between a plaintext file and the root is made owner-only.
RESULTS_MARKER = ".oncofhir-results"
#: A temp file made on another host (shared cluster file system) is stale when untouched this long: its pid
#: cannot be checked from here, and a live writer touches its file continuously.
FOREIGN_IDLE_SECONDS = 3600
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.oncofhir-tmp-(?P<host>[A-Za-z0-9_]*)-(?P<pid>[0-9]+)$")
#: Names of versions before 0.x: ``.<name>.tmp<pid>`` files and ``.<name>.partial`` folders (no host recorded).
_LEGACY_RE = re.compile(r"^\..+(\.tmp[0-9]+|\.partial)$")
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


@cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40]


def temp_path(path: str | Path) -> Path:
    """The recognisable temp name for ``path`` used by this process (see the module's docstring)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARK}{_host()}-{os.getpid()}")


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc; None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        lines = Path("/proc/stat").read_text().splitlines()
        boot = next(int(line.split()[1]) for line in lines if line[:6] == "btime ")
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def is_stale(path: str | Path) -> bool:
    """True when ``path`` is an oncofhir temp file or staging folder no live process is writing.

    Made on this host: stale when its process is gone, belongs to another user, or started after the file was
    last written (the pid was reused). Made on another host: stale when untouched for FOREIGN_IDLE_SECONDS.
    Anything that is not an oncofhir temp name is never stale.
    """
    path = Path(path)
    try:
        mtime = path.lstat().st_mtime
    except FileNotFoundError:
        return False
    match = _TEMP_RE.match(path.name)
    if match is None:
        return _LEGACY_RE.match(path.name) is not None and time.time() - mtime > FOREIGN_IDLE_SECONDS
    if match["host"] != _host():
        return time.time() - mtime > FOREIGN_IDLE_SECONDS
    pid = int(match["pid"])
    if pid == os.getpid():
        return True  # this process is about to write it anew: a leftover of an earlier process with our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return True  # another user's process: not the writer of our owner-only file
    started = _process_start(pid)
    return started is not None and started > mtime + 1


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(*outputs: str | Path) -> list[Path]:
    """Remove stale temp files and staging folders of ``outputs`` (a stage calls it on start); returns them."""
    removed = []
    for output in outputs:
        output = Path(output)
        prefix = f".{output.name}."
        try:
            entries = [e.name for e in os.scandir(output.parent) if e.name.startswith(prefix)]
        except OSError:
            continue
        for name in entries:
            candidate = output.parent / name
            match = _TEMP_RE.match(name)
            rest = name[len(prefix) :]
            legacy = rest == "partial" or (rest[:3] == "tmp" and rest[3:].isdigit())
            if ((match and match["name"] == output.name) or legacy) and is_stale(candidate):
                _remove(candidate)
                removed.append(candidate)
    return removed


def sweep_stale(root: str | Path) -> list[Path]:
    """Remove every stale oncofhir temp file or staging folder below ``root``; returns what was removed.

    The workflow runs it on ``results/`` before any job, so a job killed during an earlier run leaves no plaintext
    behind even when that job never runs again (its center removed from the sheet)."""
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if (_TEMP_RE.match(name) or _LEGACY_RE.match(name)) and is_stale(Path(folder, name)):
                _remove(Path(folder, name))
                removed.append(Path(folder, name))
        dirs[:] = [d for d in dirs if Path(folder, d) not in removed]
    return removed


def prepare_results(root: str | Path) -> list[Path]:
    """Make the results root owner-only and mark it (see :data:`RESULTS_MARKER`), then sweep stale temp files."""
    root = private_dir(root)
    marker = root / RESULTS_MARKER
    if not marker.exists():
        marker.write_text("oncofhir results root: folders below it that hold plaintext are kept 0700\n")
    return sweep_stale(root)


def _results_root(folder: Path) -> Path | None:
    for parent in (folder, *folder.parents):
        if (parent / RESULTS_MARKER).is_file():
            return parent
    return None


def private_parents(path: str | Path) -> None:
    """Create the folder of ``path`` 0700, and make it and every folder up to the results root owner-only.

    Folders this creates are 0700. Inside a results tree (a folder holding :data:`RESULTS_MARKER`), folders made
    by others (Snakemake creates each output's folder with the umask's 0755) are made 0700 too, up to the root;
    outside one, existing folders are left as they are (never chmod a user's working directory).
    """
    folder = Path(os.path.abspath(Path(path).parent))
    missing = []
    for parent in (folder, *folder.parents):
        if parent.is_dir():
            break
        missing.append(parent)
    for parent in reversed(missing):
        with contextlib.suppress(FileExistsError):
            parent.mkdir(mode=DIR_MODE)
        os.chmod(parent, DIR_MODE)
    root = _results_root(folder)
    if root is None:
        return
    uid = os.geteuid()
    for parent in (folder, *folder.parents):
        st = parent.stat()
        if st.st_uid == uid and st.st_mode & 0o777 != DIR_MODE:
            os.chmod(parent, DIR_MODE)
        if parent == root:
            break


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and make it owner-only (and, in a results tree, its parents)."""
    path = Path(path)
    private_parents(path / "x")
    os.chmod(path, DIR_MODE)
    return path


def no_space(exc: OSError, path: str | Path) -> ResourceError | None:
    """The one-line error for a full disk or quota while writing ``path``, or None for any other OSError."""
    if exc.errno in _NO_SPACE:
        return ResourceError(f"no space left on {exc.filename or path}: free some space there and rerun")
    return None


@contextlib.contextmanager
def private_writer(path: str | Path, mode: int = FILE_MODE) -> Iterator[BinaryIO]:
    """A binary handle on a temp file next to ``path`` (0600 by default), renamed to ``path`` only if the block
    completes.

    For outputs written piece by piece (a center's NDJSON): memory stays O(one record), and a failed job leaves
    the previous file or none, never a truncated one. Stale temp files of ``path`` (killed jobs) are removed
    first. A private file's folders are made owner-only (:func:`private_parents`). A full disk is a
    :class:`ResourceError` naming ``path``.
    """
    path = Path(path)
    if mode & 0o077:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        private_parents(path)
    clean_stale(path)
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    except OSError as exc:
        raise no_space(exc, path) or exc from None
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as handle:
            yield handle
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        error = no_space(exc, path)
        if error is not None:
            raise error from None
        raise
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
