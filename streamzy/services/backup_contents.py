"""What is inside a backup file's encrypted stream, and opening it.

The plaintext is: the manifest's length (4 bytes), the manifest (JSON: backend, schema
revision, time, counts), then the database itself (a SQLite file, or a ``pg_dump -Fc``
archive). The encryption around it is storage/backup_file.py.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from streamzy.services.errors import ServiceError
from streamzy.storage.backup_file import (
    BackupFileError,
    BackupWriter,
    PlainReader,
    parse_backup_key,
)
from streamzy.storage.crypto import MasterKeys

LENGTH = struct.Struct(">I")
MAX_MANIFEST = 64 * 1024


class BackupError(ServiceError):
    """A backup or restore that cannot be done or did not verify; nothing was replaced."""

    kind = "invalid"


@dataclass(frozen=True)
class Manifest:
    backend: str
    revision: str
    created_at: str
    rooms: int
    messages: int
    room_keys: int
    format: int = 1


def backup_key(settings: Any) -> bytes:
    try:
        return parse_backup_key(settings.backup_key.get_secret_value())
    except BackupFileError as exc:
        raise BackupError("no_backup_key", str(exc)) from None


def master_keys(settings: Any) -> MasterKeys:
    return MasterKeys([k.get_secret_value() for k in settings.message_keys])


def write_manifest(writer: BackupWriter, manifest: Manifest) -> None:
    data = json.dumps(asdict(manifest), sort_keys=True).encode()
    writer.write(LENGTH.pack(len(data)) + data)


def read_manifest_from(reader: PlainReader) -> Manifest:
    head = reader.read(LENGTH.size)
    if len(head) != LENGTH.size:
        raise BackupError("bad_backup", "the backup holds no manifest")
    (length,) = LENGTH.unpack(head)
    if length > MAX_MANIFEST:
        raise BackupError("bad_backup", "the backup manifest is damaged")
    try:
        values = json.loads(reader.read(length))
        return Manifest(**values)
    except (ValueError, TypeError):
        raise BackupError("bad_backup", "the backup manifest is damaged") from None


def open_backup(source: Path, key: bytes) -> tuple[BinaryIO, PlainReader, Manifest]:
    try:
        handle = open(source, "rb")  # closed by the caller
    except OSError as exc:
        raise BackupError("no_backup", f"cannot read {source}: {exc.strerror}") from None
    reader = PlainReader(handle, key)
    try:
        return handle, reader, read_manifest_from(reader)
    except BackupFileError as exc:
        handle.close()
        raise BackupError("bad_backup", str(exc)) from None
    except BaseException:
        handle.close()
        raise


def read_manifest(source: Path, key: bytes) -> Manifest:
    handle, _, manifest = open_backup(source, key)
    handle.close()
    return manifest


def payload(reader: PlainReader) -> Iterator[bytes]:
    try:
        while chunk := reader.read(1024 * 1024):
            yield chunk
    except BackupFileError as exc:
        raise BackupError("bad_backup", str(exc)) from None


def private_file(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")
