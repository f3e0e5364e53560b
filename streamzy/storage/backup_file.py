"""The encrypted backup file: streaming authenticated encryption (AES-256-GCM, chunked).

Layout::

    header   magic "STZYBKP" + format version (1 byte) + chunk size (4) + file salt (16)
             + backup key id (8)                                            = 36 bytes
    chunks   final flag (1) + ciphertext length (4) + ciphertext with its 16-byte tag

Each file gets its own data key, HKDF-SHA256(backup key, salt), and chunk ``i`` is sealed
with the nonce ``salt[:8] + i`` (4 bytes) and the AAD ``header + i + final flag``. So a
changed byte, a chunk moved or dropped, a file cut after any chunk, data after the final
chunk, a header from another file or another key: each fails with a clear BackupFileError
before a byte of it is trusted. Only one chunk is in memory at a time.

Why a key of its own (``STREAMZY_BACKUP_KEY``) and not a message key: the backup holds room
keys wrapped by the master keys, and the master keys are never in it; whoever holds a
backup file and its backup key still cannot read a message without the master keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"STZYBKP"
VERSION = 1
CHUNK_SIZE = 1024 * 1024
HEADER = struct.Struct(">7sBI16s8s")
FRAME = struct.Struct(">BI")
TAG_BYTES = 16
MAX_CHUNK = 64 * 1024 * 1024  # a header may not make a reader allocate more than this
KEY_BYTES = 32


class BackupFileError(Exception):
    """The file cannot be opened: not a backup, another key, tampered with or truncated."""


def parse_backup_key(value: str) -> bytes:
    """The 32-byte key from ``STREAMZY_BACKUP_KEY`` (url-safe base64), or BackupFileError."""
    text = value.strip()
    if not text:
        raise BackupFileError("STREAMZY_BACKUP_KEY is not set: run `streamzy gen-key --backup`")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BackupFileError("STREAMZY_BACKUP_KEY is not url-safe base64") from None
    if len(raw) != KEY_BYTES:
        raise BackupFileError(f"STREAMZY_BACKUP_KEY must hold {KEY_BYTES} bytes "
                              f"(got {len(raw)}): run `streamzy gen-key --backup`")
    return raw


def new_backup_key() -> str:
    """A fresh backup key as ``STREAMZY_BACKUP_KEY`` takes it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def key_id(key: bytes) -> bytes:
    """A short fingerprint naming the key in the header (never the key, nor derived from
    it in a way that helps guess it)."""
    return hashlib.sha256(b"streamzy backup key id\0" + key).digest()[:8]


def _file_key(key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt,
                   info=b"streamzy backup file v1").derive(key)
    return AESGCM(derived)


def _nonce(salt: bytes, index: int) -> bytes:
    return salt[:8] + struct.pack(">I", index)


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0)


class BackupWriter:
    """Encrypts a byte stream into ``out`` one chunk at a time (blocking: run in a thread)."""

    def __init__(self, out: BinaryIO, key: bytes, chunk_size: int = CHUNK_SIZE) -> None:
        if not 0 < chunk_size <= MAX_CHUNK:
            raise ValueError("chunk size out of range")
        self._out = out
        self._chunk_size = chunk_size
        salt = secrets.token_bytes(16)
        self._salt = salt
        self._header = HEADER.pack(MAGIC, VERSION, chunk_size, salt, key_id(key))
        self._aead = _file_key(key, salt)
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        out.write(self._header)

    def _seal(self, data: bytes, final: bool) -> None:
        if self._index >= 2**32:
            raise BackupFileError("backup too large for one file")
        sealed = self._aead.encrypt(_nonce(self._salt, self._index), data,
                                    _aad(self._header, self._index, final))
        self._out.write(FRAME.pack(1 if final else 0, len(sealed)))
        self._out.write(sealed)
        self._index += 1

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ValueError("writer closed")
        self._buffer += data
        # Keep at least one byte back: the last chunk is sealed as final in close().
        while len(self._buffer) > self._chunk_size:
            self._seal(bytes(self._buffer[:self._chunk_size]), final=False)
            del self._buffer[:self._chunk_size]

    def close(self) -> None:
        """Seal what is left as the final chunk (possibly empty)."""
        if not self._closed:
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._closed = True


def _read_exact(source: BinaryIO, size: int, what: str) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise BackupFileError(f"the backup file is truncated ({what})")
    return data


def read_chunks(source: BinaryIO, key: bytes) -> Iterator[bytes]:
    """The plaintext of ``source`` chunk by chunk, each authenticated before it is yielded;
    raises BackupFileError on anything but an intact file made with ``key``."""
    header = source.read(HEADER.size)
    if len(header) < HEADER.size or not header.startswith(MAGIC):
        raise BackupFileError("not a Streamzy backup file")
    _magic, version, chunk_size, salt, file_key_id = HEADER.unpack(header)
    if version != VERSION:
        raise BackupFileError(f"backup format version {version} is not supported "
                              f"(this Streamzy reads version {VERSION})")
    if not 0 < chunk_size <= MAX_CHUNK:
        raise BackupFileError("the backup header is damaged (chunk size)")
    if file_key_id != key_id(key):
        raise BackupFileError("this backup was made with a different STREAMZY_BACKUP_KEY "
                              f"(key id {file_key_id.hex()}, configured {key_id(key).hex()})")
    aead = _file_key(key, salt)
    index = 0
    while True:
        frame = source.read(FRAME.size)
        if len(frame) < FRAME.size:
            raise BackupFileError("the backup file is truncated (it ends before its final "
                                  "chunk)")
        final, length = FRAME.unpack(frame)
        if final not in (0, 1) or not TAG_BYTES <= length <= chunk_size + TAG_BYTES:
            raise BackupFileError(f"the backup file is damaged at chunk {index}")
        sealed = _read_exact(source, length, f"chunk {index}")
        try:
            plain = aead.decrypt(_nonce(salt, index), sealed, _aad(header, index, bool(final)))
        except InvalidTag:
            raise BackupFileError(f"the backup file was altered or damaged (chunk {index} "
                                  "does not authenticate)") from None
        yield plain
        if final:
            if source.read(1):
                raise BackupFileError("the backup file has data after its final chunk")
            return
        index += 1


class PlainReader:
    """A file-like ``read(n)`` over the decrypted chunks (bounded memory)."""

    def __init__(self, source: BinaryIO, key: bytes) -> None:
        self._chunks = read_chunks(source, key)
        self._buffer = bytearray()
        self._done = False

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._done = True
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def drain(self) -> None:
        """Read to the end, so the final chunk (and nothing after it) is checked."""
        while self.read(CHUNK_SIZE):
            pass


def fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
