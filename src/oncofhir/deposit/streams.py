"""File wrappers that hash what passes through them, so every byte is read once and hashed on the way.

Encrypting thousands of small files is dominated by per-file overhead; reading a plaintext a second time to hash
it, or the encrypted file after writing it, would double the I/O. These wrappers give the crypt4gh library the
``readinto``/``read``/``write`` it calls and update md5 and sha256 as the data goes by.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

#: Buffered output is written in one system call once it exceeds this (per-patient files: a single write).
FLUSH_BYTES = 1 << 20


class HashingReader:
    """Reads a raw (unbuffered) file, hashing every byte returned; fills each buffer fully until end of file.

    Filling fully matters: ``crypt4gh.lib.encrypt`` stops at the first short read, so a short read in the
    middle of a file would silently truncate the encrypted copy.
    """

    __slots__ = ("_raw", "md5", "sha256", "size")

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.md5 = hashlib.md5()  # noqa: S324 (a checksum EGA asks for, not a security measure)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer)
        total = 0
        while total < len(view):
            n = self._raw.readinto(view[total:])
            if not n:
                break
            total += n
        if total:
            chunk = view[:total]
            self.md5.update(chunk)
            self.sha256.update(chunk)
            self.size += total
        return total

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self._raw.read()
        else:
            buffer = bytearray(size)
            n = self.readinto(buffer)
            return bytes(buffer[:n])
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever is left, so the checksums cover the whole file."""
        buffer = bytearray(1 << 16)
        while self.readinto(buffer):
            pass


class HashingWriter:
    """Hashes everything written and passes it to a file descriptor in as few system calls as possible.

    ``fd`` may be None to only hash (verification decrypts into one of these, keeping nothing).
    """

    __slots__ = ("_chunks", "_fd", "_pending", "md5", "sha256", "size")

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self._chunks: list[bytes | bytearray] = []
        self._pending = 0
        self.md5 = hashlib.md5()  # noqa: S324 (a checksum EGA asks for, not a security measure)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.md5.update(data)
        self.sha256.update(data)
        n = len(data)
        self.size += n
        if self._fd is not None:
            self._chunks.append(bytes(data) if isinstance(data, memoryview) else data)
            self._pending += n
            if self._pending >= FLUSH_BYTES:
                self.flush()
        return n

    def flush(self) -> None:
        if self._fd is None or not self._chunks:
            return
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._pending = 0
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
