"""Encrypt one (use case, center) for the EGA: every patient bundle and the center's NDJSON to ``.c4gh``.

One process per center encrypts every file (the ``crypt4gh`` command-line tool costs ~50 ms a call, 17 minutes for
20,000 patients), with the key exchange done once per run (:mod:`oncofhir.deposit.c4gh`). Each plaintext is read
once: md5 and sha256 of the plaintext and of the encrypted bytes are computed on the way, and the per-center
manifest lists them all. Keys are loaded and every name checked before the first file is encrypted; output appears
under its final name only when complete (a staging folder renamed at the end), so a killed job leaves nothing
half-encrypted."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import orjson

from ..dictionary.compiled import CompiledDictionary
from ..errors import ConfigError, InputDataError
from ..io_utils import clean_stale, temp_path, write_private
from ..privacy.generalise import ROUND_TRIP, BundleGeneraliser, describe, load_plan
from .c4gh import Encryptor, Engine, Sums
from .keys import fingerprint, load_private_key, load_recipients, public_from_private, quiet_crypt4gh
from .manifest import format_manifest
from .names import C4GH_SUFFIX, ega_name_problem
from .pseudonym import is_pseudonym

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
#: Encrypted files are safe to share; the usual umask applies.
C4GH_MODE = 0o644


def _bundle_names(bundle_dir: Path) -> list[str]:
    """The per-patient bundle files, sorted: ``*.json`` only, hidden files ignored.

    Snakemake keeps a hidden ``.snakemake_timestamp`` in directory outputs; nothing but bundles is encrypted.
    """
    if not bundle_dir.is_dir():
        raise InputDataError("bundle folder not found", path=str(bundle_dir))
    with os.scandir(bundle_dir) as entries:
        return sorted(e.name for e in entries if e.name.endswith(".json") and not e.name.startswith("."))


def _check_names(names: list[str], ndjson_name: str, *, expect_pseudonyms: bool) -> None:
    problems = []
    for name in names:
        stem = name[: -len(".json")]
        why = ega_name_problem(name + C4GH_SUFFIX)
        if why:
            problems.append(f"{name + C4GH_SUFFIX!r} {why}")
        elif expect_pseudonyms and not is_pseudonym(stem):
            problems.append(f"{name!r} is not named by a pseudonym (psn-...): pseudonymise in the FHIR stage first")
    why = ega_name_problem(ndjson_name)
    if why:
        problems.append(f"{ndjson_name!r} {why}")
    if problems:
        more = [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        raise InputDataError("file names the EGA would refuse", details=problems[:20] + more)


def _encrypt_file(encryptor: Encryptor, src: str, dest: str) -> Sums:
    """Encrypt ``src`` to the new file ``dest`` (created, never overwritten); sizes and checksums of both."""
    fd_in = os.open(src, _READ)
    try:
        expected = os.fstat(fd_in).st_size
        fd_out = os.open(dest, _FLAGS, C4GH_MODE)
        try:
            sums = encryptor.encrypt_fd(fd_in, fd_out, expected)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    if sums[0] != expected:
        raise InputDataError(f"read {sums[0]} of {expected} bytes: the file changed while being encrypted", path=src)
    return sums


def stage_encrypt(
    bundle_dir: str | Path | None,
    ndjson_path: str | Path,
    out_dir: str | Path,
    manifest_out: str | Path,
    *,
    use_case: str,
    center: str,
    recipients: list[str],
    sender_key: str | None = None,
    expect_pseudonyms: bool = True,
    engine: Engine = "fast",
    threads: int = 1,
    index: str | Path | None = None,
    fhir_summary: str | Path | None = None,
    generalise: tuple[str | Path, str | Path] | None = None,
    generalised_out: str | Path | None = None,
) -> dict[str, Any]:
    """Encrypt a center's bundles and NDJSON into ``out_dir`` for every recipient; write the center's manifest.

    ``out_dir`` is ``<EGA root>/<use_case>/<center>``; the manifest's ``file`` column is relative to the root.

    ``recipients`` are public key files (EGA's ingestion key first, then any consortium keys); every one must
    load, or nothing is done. Without ``sender_key`` a random key is used for this run, as the crypt4gh tool does
    (the sender key only proves provenance; recipients decrypt with their own key alone). With
    ``expect_pseudonyms`` every bundle must be named by a pseudonym, so a raw record id never leaves.
    With ``bundle_dir=None`` the patients' bundles are read from the NDJSON itself, line by line, and named by
    the ``patient_key`` column of the FHIR stage's ``index`` (same order): the workflow's way, so that no
    per-patient plaintext file is ever created (nor 20,000 files written, read and deleted per 20,000 patients).
    Each line's bytes are exactly what the patient's ``.json`` file would hold.
    ``engine`` is ``fast`` (key exchange once per run) or ``library`` (``crypt4gh.lib.encrypt`` per file);
    see :mod:`oncofhir.deposit.c4gh`. ``fhir_summary`` (the FHIR stage's ``summary.json``) gives the secret
    fingerprint every manifest row records (empty without it), and its bundle count must match. ``threads`` > 1
    encrypts files concurrently: hashing and file system calls release the GIL, so a second thread nearly halves
    the time on two cores. ``generalise`` (the compiled dictionary and the use case's privacy report) applies the
    report's generalisation plan to every bundle read from the NDJSON, in memory, before it is encrypted (the
    center's encrypted NDJSON is the generalised lines); ``generalised_out`` receives the per-rule counts of what
    changed (no value, no record id), written even when the use case has no rule.
    """
    quiet_crypt4gh()
    clean_stale(out_dir, manifest_out)  # what a killed run of this job left
    pubkeys = load_recipients(recipients)
    secret = load_private_key(sender_key) if sender_key else os.urandom(32)
    ndjson_path, out_dir = Path(ndjson_path), Path(out_dir)
    for part, value in (("use case", use_case), ("center", center)):
        if ega_name_problem(value + C4GH_SUFFIX) or "." in value:
            raise ConfigError(f"{part} {value!r} cannot be part of an EGA file name")
    if (out_dir.parent.name, out_dir.name) != (use_case, center):  # the manifest's paths assume this layout
        raise ConfigError(f"the output folder must be <EGA root>/{use_case}/{center}", path=str(out_dir))
    if bundle_dir is None:
        if index is None:
            raise TypeError("without bundle_dir, the FHIR stage's index names the NDJSON's bundles")
        names = [f"{key}.json" for key in _index_keys(Path(index))]
        where = f"the index {index} lists"
    else:
        names = _bundle_names(Path(bundle_dir))
        where = f"{bundle_dir} holds"
    ndjson_name = f"{use_case}.{center}.ndjson{C4GH_SUFFIX}"
    _check_names(names, ndjson_name, expect_pseudonyms=expect_pseudonyms)
    if not ndjson_path.is_file():
        raise InputDataError("center NDJSON not found", path=str(ndjson_path))
    lines = _count_lines(ndjson_path)
    if lines != len(names):
        raise InputDataError(
            f"the NDJSON has {lines} bundle(s) but {where} {len(names)}: the FHIR outputs are out of step; rerun "
            "the FHIR stage",
            path=str(ndjson_path),
        )
    if bundle_dir is None and len(set(names)) != len(names):
        raise InputDataError("the index names two bundles alike", path=str(index))
    secret_fp = ""
    if fhir_summary is not None:
        try:
            summary = json.loads(Path(fhir_summary).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputDataError(f"cannot read the FHIR summary: {exc}", path=str(fhir_summary)) from None
        secret_fp = summary.get("secret_fingerprint", "")
        if summary.get("bundles") != len(names):
            raise InputDataError(
                f"the FHIR summary counts {summary.get('bundles')} bundle(s) but {where} {len(names)}: rerun the "
                "FHIR stage",
                path=str(fhir_summary),
            )

    plan = load_plan(*generalise) if generalise is not None else None
    if plan is not None and bundle_dir is not None:
        raise TypeError("generalisation reads the bundles from the NDJSON (bundle_dir=None)")
    generalising = plan is not None and bool(plan[1])
    generalisers: list[BundleGeneraliser] = []
    out_lines: list[bytes] = [b""] * (len(names) + 1)

    started = time.perf_counter()
    staging = temp_path(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    dest_dir = f"{staging}/"  # plain strings: a pathlib join costs ~10 us
    # The NDJSON first: the largest job, so the other thread has the bundles to balance against it.
    jobs = [(str(ndjson_path), dest_dir + ndjson_name)]
    if bundle_dir is not None:
        src_dir = f"{bundle_dir}/"
        jobs += [(src_dir + name, dest_dir + name + C4GH_SUFFIX) for name in names]
    else:
        jobs += [("", dest_dir + name + C4GH_SUFFIX) for name in names]
    sums: list[Sums | None] = [None] * len(jobs)
    # generalising, the NDJSON is encrypted last, from the generalised lines (kept in memory, never on disk)
    next_job = iter(range(1 if generalising else 0, len(jobs)))
    lock, failed = threading.Lock(), threading.Event()
    reader = open(ndjson_path, "rb") if bundle_dir is None else None  # noqa: SIM115 (closed in finally)

    def worker() -> None:
        """Take jobs one at a time from the shared queue (one future per thread, not per file: ~15 us each)."""
        encryptor = Encryptor(secret, pubkeys, engine=engine)  # one per thread: it reuses its buffers
        generaliser = None
        if generalising and plan is not None:
            generaliser = BundleGeneraliser(plan[0], plan[1])  # one per thread: its counters are summed at the end
            with lock:
                generalisers.append(generaliser)
        while not failed.is_set():
            with lock:  # jobs, and NDJSON lines, are handed out in order
                index = next(next_job, None)
                line = reader.readline() if reader is not None and index else None
            if index is None:
                return
            try:
                if line is None:
                    sums[index] = _encrypt_file(encryptor, *jobs[index])
                else:
                    if generaliser is not None:
                        line = _generalise_line(generaliser, line)
                        out_lines[index] = line
                    sums[index] = _encrypt_line(encryptor, line, jobs[index][1])
            except BaseException:
                failed.set()  # the other threads stop at their next file
                raise

    try:
        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for future in [pool.submit(worker) for _ in range(threads)]:
                    future.result()
        else:
            worker()
        if generalising:
            fd_out = os.open(jobs[0][1], _FLAGS, C4GH_MODE)
            try:
                sums[0] = Encryptor(secret, pubkeys, engine=engine).encrypt_bytes(b"".join(out_lines), fd_out)
            finally:
                os.close(fd_out)
            out_lines.clear()
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.rename(staging, out_dir)
    finally:
        if reader is not None:
            reader.close()
        shutil.rmtree(staging, ignore_errors=True)
    done = cast(list[Sums], sums)
    prefix = f"{use_case}/{center}/"
    rows = sorted(  # by file name, whichever order the bundles were read in
        (use_case, center, name[: -len(".json")], prefix + name + C4GH_SUFFIX, *map(str, file_sums), secret_fp)
        for name, file_sums in zip(names, done[1:], strict=True)
    )
    rows.append((use_case, center, "", prefix + ndjson_name, *map(str, done[0]), secret_fp))
    Path(manifest_out).parent.mkdir(parents=True, exist_ok=True)
    write_private(manifest_out, format_manifest(rows))
    seconds = time.perf_counter() - started
    if generalised_out is not None:
        write_private(generalised_out, _round_trip(use_case, center, plan, generalisers, len(names)))
    return {
        "use_case": use_case,
        "center": center,
        "bundles": len(names),
        "files": len(rows),
        "plain_bytes": sum(int(r[4]) for r in rows),
        "c4gh_bytes": sum(int(r[7]) for r in rows),
        "recipients": [fingerprint(pk) for pk in pubkeys],
        "sender": fingerprint(public_from_private(secret)) if sender_key else "random",
        "threads": threads,
        "seconds": round(seconds, 3),
    }


def _encrypt_line(encryptor: Encryptor, line: bytes, dest: str) -> Sums:
    """Encrypt one NDJSON line (without its newline) to the new file ``dest``."""
    data = line[:-1] if line.endswith(b"\n") else line
    if not data.strip():
        raise InputDataError("blank line where a bundle was expected: the NDJSON and the index are out of step")
    fd_out = os.open(dest, _FLAGS, C4GH_MODE)
    try:
        return encryptor.encrypt_bytes(data, fd_out)
    finally:
        os.close(fd_out)


def _generalise_line(generaliser: BundleGeneraliser, line: bytes) -> bytes:
    """One NDJSON line generalised (its own bytes when nothing changed), newline kept."""
    data = line[:-1] if line.endswith(b"\n") else line
    try:
        bundle = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputDataError(f"an NDJSON line is not JSON ({exc}): rerun the FHIR stage") from None
    if not generaliser.apply(bundle):
        return data + b"\n"
    return orjson.dumps(bundle) + b"\n"


def _round_trip(
    use_case: str,
    center: str,
    plan: tuple[CompiledDictionary, list[dict[str, Any]]] | None,
    generalisers: list[BundleGeneraliser],
    bundles: int,
) -> bytes:
    """The center's generalisation counts per rule (values in, generalised, unchanged): counts only."""
    rules = plan[1] if plan is not None else []
    counts = []
    for rule in rules:
        total = dict.fromkeys(ROUND_TRIP, 0)
        for g in generalisers:
            for name in ROUND_TRIP:
                total[name] += g.counts[rule["variable"]][name]
        definition = {k: rule[k] for k in ("variable", "bands", "group_rare_below", "into") if k in rule}
        counts.append({"variable": rule["variable"], "rule": describe(rule), "definition": definition, **total})
    doc = {"use_case": use_case, "center": center, "bundles": bundles, "rules": counts}
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def _index_keys(index: Path) -> list[str]:
    """The ``patient_key`` column of the FHIR stage's index, in NDJSON order."""
    from ..fhir.index import iter_index

    return [key for (key,) in iter_index(index, "patient_key")]


def _count_lines(path: Path) -> int:
    """Non-empty lines of an NDJSON file, counted in 1 MiB blocks."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")
