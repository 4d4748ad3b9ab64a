"""Where SUSHI is, whether it can be installed, and installing it on first use (``ig.enabled: auto`` or ``true``).

One installer: ``install_sushi.sh`` beside this module (``tools/sushi/install.sh`` runs it too), which pins
fsh-sushi and the FHIR core package; the versions are read from it here, never repeated. The workflow's
``implementation_guide`` job calls :func:`ensure_sushi`: with SUSHI and the core package present it does nothing
(offline); otherwise it runs the installer with npm, under an exclusive lock so that two runs (or a manual
install) never write the same folder at once, and prints what it did into the job's log.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError

#: The installer, shipped inside the package so the workflow finds it after ``pip install .`` too.
INSTALLER = Path(__file__).with_name("install_sushi.sh")


def _pinned(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", INSTALLER.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:  # a broken checkout, not a user error
        raise RuntimeError(f"{INSTALLER} does not set {name}")
    return match.group(1)


SUSHI_VERSION = _pinned("SUSHI_VERSION")
CORE_PACKAGE = f"{_pinned('CORE_PACKAGE')}#{_pinned('CORE_VERSION')}"


def sushi_home(home: str | Path | None = None) -> Path:
    """Where the installer puts SUSHI: ``home``, else ``$ONCOFHIR_SUSHI_HOME``, else ``~/.cache/oncofhir/sushi``."""
    if home:
        return Path(os.path.expanduser(str(home)))
    return Path(os.environ.get("ONCOFHIR_SUSHI_HOME") or Path.home() / ".cache" / "oncofhir" / "sushi")


def package_cache() -> Path:
    """The FHIR package cache SUSHI reads the core package from (the installer's ``FHIR_PACKAGE_CACHE``)."""
    return Path(os.environ.get("FHIR_PACKAGE_CACHE") or Path.home() / ".fhir" / "packages")


def installed_sushi(home: str | Path | None = None) -> Path | None:
    """The ``sushi`` executable (the installer's, else one on PATH) when the core package is cached too; None
    otherwise. Only file checks: cheap enough for every workflow parse."""
    candidate = sushi_home(home) / "node_modules" / ".bin" / "sushi"
    found = candidate if candidate.exists() else (Path(p) if (p := shutil.which("sushi")) else None)
    if found is None or not (package_cache() / CORE_PACKAGE / "package" / "package.json").is_file():
        return None
    return found


def npm_available() -> bool:
    """Whether the installer could run (it needs npm and, once, the npm registry)."""
    return shutil.which("npm") is not None


def ensure_sushi(home: str | Path | None = None) -> Path:
    """SUSHI ready to run offline: found as installed, or installed now with npm (first use). The installer's
    output goes to stderr (the job's log); a missing npm or a failed install is one line saying what to do."""
    found = installed_sushi(home)
    if found is not None:
        return found
    target = sushi_home(home)
    if not npm_available():
        raise ConfigError(
            f"SUSHI (fsh-sushi {SUSHI_VERSION}) is not installed in {target} and npm is not on PATH to install it: "
            "install Node.js/npm (e.g. apt-get install npm), or set ig.enabled: false"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run installing: wait for it, then find its result
        found = installed_sushi(home)
        if found is not None:
            return found
        print(f"oncofhir ig: installing SUSHI (fsh-sushi {SUSHI_VERSION}) and {CORE_PACKAGE} with npm", file=sys.stderr)
        env = os.environ | {"ONCOFHIR_SUSHI_HOME": str(target), "ONCOFHIR_SUSHI_LOCKED": "1"}
        done = subprocess.run(["bash", str(INSTALLER)], env=env, capture_output=True, text=True, check=False)
        sys.stderr.write(done.stdout + done.stderr)
    found = installed_sushi(home)
    if done.returncode != 0 or found is None:
        raise ConfigError(
            f"installing SUSHI (fsh-sushi {SUSHI_VERSION}) with npm into {target} failed (exit status "
            f"{done.returncode}; its output is in this job's log): check that the npm registry is reachable, or "
            "set ig.enabled: false"
        )
    return found
