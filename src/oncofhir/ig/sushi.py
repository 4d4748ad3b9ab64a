"""Compile the generated FSH with SUSHI and pack the result as a FHIR NPM package (``package.tgz``).

SUSHI (npm ``fsh-sushi``, pinned in install_sushi.sh: :mod:`oncofhir.ig.install`) reads the FHIR core package
from the package cache ``~/.fhir/packages``, as the HL7 validator does; offline it cannot fetch the packages it adds
to every project on its own (the IG Publisher's tools, THO and extensions "latest"), which it reports as warnings.
The generated FSH uses none of them: those three warnings are expected (:data:`EXPECTED_WARNINGS`), any other
warning or error fails.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DictionaryError
from ..io_utils import clean_stale, temp_path
from .install import SUSHI_VERSION, sushi_home

INSTALL_HINT = "install it with: bash tools/sushi/install.sh (needs npm), or set ig.enabled: false"
#: SUSHI warnings expected offline, and why they do not matter.
EXPECTED_WARNINGS = {
    "Failed to load automatically-provided hl7.fhir.uv.tools.r4#latest": "IG Publisher tooling; FSH-only build",
    "Failed to load automatically-provided hl7.terminology.r4#latest": "the FSH names no THO value set",
    "Failed to load automatically-provided hl7.fhir.uv.extensions.r4#latest": "the FSH uses only core extensions",
}
_SUMMARY = re.compile(r"(\d+) Errors?\s+(\d+) Warnings?")
_MESSAGE = re.compile(r"^(warn|error)\s+(.*)$")


def find_sushi(home: str | Path | None = None) -> Path:
    """The ``sushi`` executable: installed by tools/sushi/install.sh, else on PATH; a one-line error otherwise."""
    home = sushi_home(home)
    candidate = home / "node_modules" / ".bin" / "sushi"
    if candidate.exists():
        return candidate
    on_path = shutil.which("sushi")
    if on_path:
        return Path(on_path)
    raise ConfigError(f"SUSHI (fsh-sushi {SUSHI_VERSION}) is not installed in {home} nor on PATH: {INSTALL_HINT}")


def compile_fsh(ig_dir: str | Path, sushi: Path, log: str | Path | None = None) -> dict[str, Any]:
    """Run ``sushi build`` in ``ig_dir``; raise unless it reports 0 errors and only expected warnings."""
    ig_dir = Path(ig_dir)
    generated = ig_dir / "fsh-generated"
    shutil.rmtree(generated, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [str(sushi), "build", str(ig_dir), "--out", str(ig_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    text = done.stdout + done.stderr
    if log:
        Path(log).write_text(text, encoding="utf-8")
    problems = [
        f"{kind}: {msg.strip()}"
        for kind, msg in (m.groups() for m in map(_MESSAGE.match, text.splitlines()) if m)
        if not (kind == "warn" and msg.strip() in EXPECTED_WARNINGS)
    ]
    summary = _SUMMARY.search(text)
    errors, warnings = (int(summary.group(1)), int(summary.group(2))) if summary else (-1, -1)
    if done.returncode != 0 or errors != 0 or problems:
        where = f" (log: {log})" if log else ""
        if not summary:
            last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
            raise DictionaryError(f"SUSHI failed with exit status {done.returncode}{where}: {last.strip()}")
        raise DictionaryError(
            f"SUSHI reported {errors} errors and {len(problems)} unexpected messages{where}; first: {problems[0]}"
            if problems
            else f"SUSHI exited with status {done.returncode}{where}"
        )
    version = re.search(r"Running SUSHI v(\S+)", text)
    return {
        "sushi": version.group(1) if version else "",
        "errors": errors,
        "warnings": warnings,
        "expected_warnings": warnings - len(problems),
        "seconds": round(seconds, 1),
    }


def pack(ig_dir: str | Path, output: str | Path) -> int:
    """``package.tgz`` from SUSHI's resources and the generated ``package.json``, with the ``.index.json`` the
    FHIR package loaders read; deterministic (sorted, fixed times) so an unchanged model packs to the same bytes."""
    ig_dir = Path(ig_dir)
    resources = sorted((ig_dir / "fsh-generated" / "resources").glob("*.json"))
    files: dict[str, bytes] = {"package/package.json": (ig_dir / "package.json").read_bytes()}
    index = []
    for path in resources:
        data = path.read_bytes()
        res = json.loads(data)
        files[f"package/{path.name}"] = data
        entry = {"filename": path.name, "resourceType": res.get("resourceType"), "id": res.get("id")}
        for key in ("url", "version", "kind", "type"):
            if key in res:
                entry[key] = res[key]
        index.append(entry)
    files["package/.index.json"] = (json.dumps({"index-version": 1, "files": index}, indent=1) + "\n").encode()
    output = Path(output)
    clean_stale(output)  # a temp name left by a killed run (io_utils.temp_path)
    tmp = temp_path(output)
    buf = io.BytesIO()
    # gzip's header holds a time stamp too (tarfile's "w:gz" writes the current time): fixed, or every build differs
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, output)
    return len(resources)
