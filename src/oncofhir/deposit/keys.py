"""Crypt4GH keys: load and check every key before any work, and generate demo keys at run time.

The ``crypt4gh`` command-line tool warns and carries on when a recipient key file is missing, and the library
calls ``sys.exit(2)`` on a wrong passphrase. Both are wrong for a deposit: a dropped recipient (EGA's ingestion
key above all) makes the submission useless, and a library must not end the process. So every key problem here
is a :class:`ConfigError` naming the file, raised before a single patient file is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..io_utils import private_dir, write_private, write_text_atomic

PASSPHRASE_ENV = "ONCOFHIR_C4GH_PASSPHRASE"  # noqa: S105 (the variable's name, not a value)
#: Demo key pairs written by :func:`generate_demo_keys`: an EGA stand-in and a consortium key.
DEMO_KEY_NAMES = ("ega", "consortium")
KEY_BYTES = 32


def quiet_crypt4gh() -> None:
    """Silence the crypt4gh library's log.

    Its DEBUG lines print secret and session keys, and its ERROR lines fire for every header packet meant for
    another recipient; oncofhir reports every failure that matters itself, naming the file.
    """
    logging.getLogger("crypt4gh").setLevel(logging.CRITICAL)


def fingerprint(public_key: bytes) -> str:
    """A short, public identifier of a public key for logs and reports (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def _first_line(path: Path) -> bytes:
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                return line.strip()
    return b""


def load_public_key(path: str | Path) -> bytes:
    """The 32-byte X25519 key of a Crypt4GH or ``ssh-ed25519`` public key file; ConfigError naming the file."""
    from crypt4gh import sodium
    from crypt4gh.keys import get_public_key

    quiet_crypt4gh()
    path = Path(path)
    if not path.is_file():
        raise ConfigError("recipient public key not found (config key deposit.recipients)", path=str(path))
    try:
        first = _first_line(path)
    except OSError as exc:
        raise ConfigError(f"recipient public key cannot be read: {exc.strerror}", path=str(path)) from None
    if b"PRIVATE KEY" in first:
        raise ConfigError("this is a private key; give the recipient's public key (.pub) instead", path=str(path))
    try:
        key = get_public_key(str(path))
    except Exception:  # the library raises ValueError, NotImplementedError, AssertionError, binascii.Error...
        key = None
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ConfigError(
            "not a Crypt4GH public key ('-----BEGIN CRYPT4GH PUBLIC KEY-----') or an ssh-ed25519 public key",
            path=str(path),
        )
    try:  # libsodium refuses low-order points (e.g. all zeros): find out now, not on the first patient
        probe = os.urandom(KEY_BYTES)
        sodium.kx_server(sodium.derive_pk(probe), probe, key)
    except Exception:
        raise ConfigError("public key is not a usable X25519 key (weak or invalid point)", path=str(path)) from None
    return key


def load_recipients(paths: Sequence[str | Path]) -> list[bytes]:
    """Every recipient's public key, in order, without duplicates; at least one, each checked.

    All problems are reported together, so a config with several bad paths is fixed in one go.
    """
    if isinstance(paths, str | Path):
        raise TypeError("paths must be a list of key files")
    if not paths:
        raise ConfigError("no recipient public keys configured (deposit.recipients, EGA's ingestion key first)")
    keys: list[bytes] = []
    problems: list[str] = []
    for path in paths:
        try:
            key = load_public_key(path)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if key not in keys:
            keys.append(key)
    if problems:
        raise ConfigError("bad recipient public key(s)", details=problems)
    return keys


def load_private_key(
    path: str | Path, passphrase_env: str = PASSPHRASE_ENV, env: Mapping[str, str] = os.environ
) -> bytes:
    """The 32-byte secret key of a Crypt4GH or OpenSSH ed25519 private key file, unlocked from ``passphrase_env``.

    The library signals a wrong passphrase (and an undecodable key) with ``SystemExit(2)`` after printing to
    stderr; both are caught here and become a ConfigError that says which of the two it was, without the value.
    """
    from crypt4gh.keys import get_private_key

    quiet_crypt4gh()
    path = Path(path)
    if not path.is_file():
        raise ConfigError("private key not found", path=str(path))
    passphrase = env.get(passphrase_env) or ""
    asked = False

    def callback() -> str:
        nonlocal asked
        asked = True
        return passphrase

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the library prints 'Invalid Key or Passphrase'
            key = get_private_key(str(path), callback)
    except (SystemExit, Exception):  # SystemExit(2): wrong passphrase or broken key; Exception: not a key
        key = None
    if isinstance(key, bytes | bytearray) and len(key) == KEY_BYTES:
        return bytes(key)
    if asked and not passphrase:
        raise ConfigError(
            f"private key is protected by a passphrase: set environment variable {passphrase_env}", path=str(path)
        )
    if asked:
        raise ConfigError(
            f"wrong passphrase for private key (from environment variable {passphrase_env})", path=str(path)
        )
    raise ConfigError("not a Crypt4GH or OpenSSH ed25519 private key", path=str(path))


def public_from_private(secret_key: bytes) -> bytes:
    """The public key belonging to ``secret_key``."""
    from crypt4gh import sodium

    return sodium.derive_pk(secret_key)


def _pem(kind: str, payload: bytes) -> bytes:
    import base64

    return (
        f"-----BEGIN CRYPT4GH {kind} KEY-----\n".encode()
        + base64.b64encode(payload)
        + (f"\n-----END CRYPT4GH {kind} KEY-----\n".encode())
    )


def generate_keypair(seckey_path: str | Path, pubkey_path: str | Path, passphrase: str | None = None) -> bytes:
    """Write a new Crypt4GH key pair in the library's own format; returns the public key.

    ``crypt4gh.keys.c4gh.generate`` creates the private key with the umask's mode and only then restricts it; here
    it is created 0600 (atomically) from the start. Without a passphrase the private key is stored unencrypted.
    """
    from crypt4gh import sodium
    from crypt4gh.keys import c4gh

    secret = os.urandom(KEY_BYTES)
    with contextlib.redirect_stderr(io.StringIO()):  # 'WARNING: The private key is not encrypted' for demo keys
        encoded = c4gh.encode_private_key(secret, passphrase.encode("utf-8") if passphrase else None, None)
    public = sodium.derive_pk(secret)
    write_private(seckey_path, _pem("PRIVATE", encoded))
    write_text_atomic(pubkey_path, _pem("PUBLIC", public).decode("ascii"))  # public: the umask's mode
    return public


def generate_demo_keys(out_dir: str | Path) -> dict[str, tuple[Path, Path]]:
    """Demo key pairs ``<name>.pub`` / ``<name>.sec`` for an EGA stand-in and the consortium, without passphrase.

    For the demo only: the real EGA ingestion key is published by the EGA, and real private keys never touch the
    workflow. Returns ``{name: (public key path, private key path)}``.
    """
    out = private_dir(out_dir)
    written = {}
    for name in DEMO_KEY_NAMES:
        pub, sec = out / f"{name}.pub", out / f"{name}.sec"
        generate_keypair(sec, pub)
        written[name] = (pub, sec)
    return written
