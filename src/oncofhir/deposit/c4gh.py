"""Crypt4GH encryption of many files for one set of recipients, hashing plaintext and ciphertext on the way.

``crypt4gh.lib.encrypt`` recomputes the sender's public key and an X25519 key exchange per recipient for every
file: ~95 us of a file's ~200 us budget per recipient, so with EGA plus a consortium key it cannot reach 5,000
files/s on one core. The exchange only depends on (sender key, recipient key), so the ``fast`` engine does it
once per run and then builds each file exactly as ``lib.encrypt`` does, from the library's own primitives:

* header: ``crypt4gh.header.serialize`` of one packet per recipient, ``method (0, 4 bytes LE) + sender public
  key + crypt4gh.sodium.chacha20poly1305_encrypt(header.make_packet_data_enc(0, session_key), shared key)``,
  as in ``crypt4gh.header.encrypt_X25519_Chacha20_Poly1305``;
* body: 64 KiB segments, each ``chacha20poly1305_encrypt(segment, session_key)`` with a random nonce, a fresh
  32-byte session key per file, no edit list.

Byte for byte the same format (the tests decrypt with both the library and the ``crypt4gh`` tool, and compare
headers with ``lib.encrypt``'s). ``engine="library"`` calls ``lib.encrypt`` itself, for cross-checks.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from typing import Any, Literal

from .streams import HashingReader, HashingWriter

#: (plain bytes, plain md5, plain sha256, encrypted bytes, encrypted md5, encrypted sha256)
Sums = tuple[int, str, str, int, str, str]
Engine = Literal["fast", "library"]
_METHOD = (0).to_bytes(4, "little")  # X25519 + ChaCha20-Poly1305, the only method Crypt4GH v1 defines


class Encryptor:
    """Encrypts file after file for a fixed sender key and recipient list."""

    def __init__(self, sender_secret: bytes, recipients: Sequence[bytes], *, engine: Engine = "fast") -> None:
        from crypt4gh import CIPHER_DIFF, SEGMENT_SIZE, sodium

        if not recipients:
            raise ValueError("at least one recipient is needed")
        if engine not in ("fast", "library"):
            raise ValueError(f"unknown engine {engine!r}")
        self.engine = engine
        self._keys = [(0, sender_secret, pk) for pk in recipients]
        sender_public = sodium.derive_pk(sender_secret)
        self._prefix = _METHOD + sender_public
        self._shared = [sodium.kx_server(sender_public, sender_secret, pk) for pk in recipients]
        self._segment = bytearray(SEGMENT_SIZE)
        self._cipher = bytearray(SEGMENT_SIZE + CIPHER_DIFF)
        self._packet_cipher = bytearray(4 + 4 + 32 + CIPHER_DIFF)  # packet type, method, session key

    def _header(self, session_key: bytes) -> bytes:
        from crypt4gh import header, sodium

        data = header.make_packet_data_enc(0, session_key)
        out = self._packet_cipher
        packets = []
        for shared in self._shared:
            n = sodium.chacha20poly1305_encrypt(out, data, shared)
            packets.append(self._prefix + bytes(out[:n]))
        return header.serialize(packets)

    def encrypt_fd(self, src: int, dest: int, size: int | None = None) -> Sums:
        """Encrypt the open file ``src`` into the open file ``dest``; sizes and checksums of both.

        ``size`` (from ``fstat``) saves the end-of-file probe, one system call per file; without it the file is
        read to its end. Zero-copy for the common small file: the header and the single encrypted segment leave
        in one ``writev``. An instance reuses its buffers, so give each thread its own.
        """
        if self.engine == "library":
            return self._encrypt_library(src, dest)
        from crypt4gh import sodium

        session_key = os.urandom(32)
        head = self._header(session_key)
        p_md5, p_sha = hashlib.md5(), hashlib.sha256()  # noqa: S324 (md5 is a checksum EGA asks for)
        c_md5, c_sha = hashlib.md5(head), hashlib.sha256(head)  # noqa: S324
        view, cipher = memoryview(self._segment), memoryview(self._cipher)
        full = len(view)
        remaining = -1 if size is None else size
        pending: list[bytes | memoryview] = [head]
        plain, encrypted = 0, len(head)
        while remaining:
            want = full if remaining < 0 else min(full, remaining)
            n = 0
            while n < want:  # fill the segment: a short read must not end the file early
                got = os.readv(src, [view[n:want]])
                if not got:
                    break
                n += got
            if not n:
                break
            data = view[:n]
            p_md5.update(data)
            p_sha.update(data)
            clen = sodium.chacha20poly1305_encrypt(cipher, data, session_key)
            block = cipher[:clen]
            c_md5.update(block)
            c_sha.update(block)
            pending.append(block)
            _write_all(dest, pending)
            pending = []
            plain += n
            encrypted += clen
            if remaining > 0:
                remaining -= n
            if n < full:
                break
        if pending:  # an empty file: the header alone
            _write_all(dest, pending)
        return plain, p_md5.hexdigest(), p_sha.hexdigest(), encrypted, c_md5.hexdigest(), c_sha.hexdigest()

    def encrypt_bytes(self, data: bytes, dest: int) -> Sums:
        """Encrypt ``data`` (one bundle taken from the center's NDJSON) into the open file ``dest``.

        The same format and sums as :meth:`encrypt_fd` on a file holding ``data``: the workflow encrypts each
        patient's bundle straight from the NDJSON line, so no per-patient plaintext file is ever written.
        """
        if self.engine == "library":
            return self._library(io.BytesIO(data), dest)
        from crypt4gh import sodium

        session_key = os.urandom(32)
        head = self._header(session_key)
        c_md5, c_sha = hashlib.md5(head), hashlib.sha256(head)  # noqa: S324 (md5 is a checksum EGA asks for)
        cipher = memoryview(self._cipher)
        full = len(self._segment)
        view = memoryview(data)
        pending: list[bytes | memoryview] = [head]
        encrypted = len(head)
        for start in range(0, len(view), full):
            clen = sodium.chacha20poly1305_encrypt(cipher, view[start : start + full], session_key)
            block = bytes(cipher[:clen])
            c_md5.update(block)
            c_sha.update(block)
            pending.append(block)
            encrypted += clen
        _write_all(dest, pending)
        plain_md5 = hashlib.md5(data).hexdigest()  # noqa: S324
        return len(data), plain_md5, hashlib.sha256(data).hexdigest(), encrypted, c_md5.hexdigest(), c_sha.hexdigest()

    def _encrypt_library(self, src: int, dest: int) -> Sums:
        with io.FileIO(src, "rb", closefd=False) as raw:
            return self._library(raw, dest)

    def _library(self, raw: Any, dest: int) -> Sums:
        """``crypt4gh.lib.encrypt`` from the readable ``raw`` into ``dest``, hashing both sides."""
        from crypt4gh import lib

        reader = HashingReader(raw)
        writer = HashingWriter(dest)
        lib.encrypt(self._keys, reader, writer)
        writer.flush()
        return (
            reader.size,
            reader.md5.hexdigest(),
            reader.sha256.hexdigest(),
            writer.size,
            writer.md5.hexdigest(),
            writer.sha256.hexdigest(),
        )


def _write_all(fd: int, buffers: list[bytes | memoryview]) -> None:
    """Write ``buffers`` in order with as few system calls as possible (``writev`` may write only part)."""
    views = [memoryview(b) for b in buffers]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
