"""The backup file format: round trips, and every kind of damage refused with a clear error."""

from __future__ import annotations

import io
import secrets

import pytest

from streamzy.storage.backup_file import (
    FRAME,
    HEADER,
    BackupFileError,
    BackupWriter,
    PlainReader,
    new_backup_key,
    parse_backup_key,
)

KEY = parse_backup_key(new_backup_key())
CHUNK = 64


def seal(data: bytes, key: bytes = KEY, chunk: int = CHUNK) -> bytes:
    out = io.BytesIO()
    writer = BackupWriter(out, key, chunk)
    for start in range(0, len(data), 37):  # writes that do not line up with chunks
        writer.write(data[start:start + 37])
    writer.close()
    return out.getvalue()


def unseal(blob: bytes, key: bytes = KEY) -> bytes:
    reader = PlainReader(io.BytesIO(blob), key)
    return reader.read()


def frames(blob: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each chunk frame, header excluded."""
    found, at = [], HEADER.size
    while at < len(blob):
        _, length = FRAME.unpack(blob[at:at + FRAME.size])
        found.append((at, FRAME.size + length))
        at += FRAME.size + length
    return found


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 1000])
def test_round_trip(size: int) -> None:
    data = secrets.token_bytes(size)
    blob = seal(data)
    assert unseal(blob) == data
    assert len(data) < 16 or data not in blob  # (a short string may occur by chance)


def test_each_file_has_its_own_salt() -> None:
    assert seal(b"same") != seal(b"same")


def test_a_wrong_key_is_named() -> None:
    other = parse_backup_key(new_backup_key())
    with pytest.raises(BackupFileError, match="different STREAMZY_BACKUP_KEY"):
        unseal(seal(b"x" * 200), other)


def test_a_flipped_byte_anywhere_is_refused() -> None:
    blob = seal(secrets.token_bytes(300))
    for at in range(HEADER.size, len(blob), 7):
        broken = bytearray(blob)
        broken[at] ^= 0x01
        with pytest.raises(BackupFileError):
            unseal(bytes(broken))


def test_a_changed_header_is_refused() -> None:
    blob = bytearray(seal(b"y" * 200))
    blob[12] ^= 0x01  # in the salt: another file key, nothing authenticates
    with pytest.raises(BackupFileError, match=r"altered|damaged"):
        unseal(bytes(blob))


def test_truncation_at_any_point_is_refused() -> None:
    blob = seal(secrets.token_bytes(300))
    for cut in range(0, len(blob) - 1, 5):
        with pytest.raises(BackupFileError):
            unseal(blob[:cut])


def test_dropping_the_final_chunk_is_refused() -> None:
    blob = seal(secrets.token_bytes(300))
    last_at, _ = frames(blob)[-1]
    with pytest.raises(BackupFileError, match="truncated"):
        unseal(blob[:last_at])


def test_reordered_chunks_are_refused() -> None:
    blob = seal(secrets.token_bytes(300))
    (a_at, a_len), (b_at, b_len) = frames(blob)[:2]
    swapped = (blob[:a_at] + blob[b_at:b_at + b_len] + blob[a_at:a_at + a_len]
               + blob[b_at + b_len:])
    with pytest.raises(BackupFileError, match="altered"):
        unseal(swapped)


def test_a_chunk_marked_final_early_is_refused() -> None:
    blob = bytearray(seal(secrets.token_bytes(300)))
    first_at, _ = frames(bytes(blob))[0]
    blob[first_at] = 1  # the flag is bound into the chunk's AAD
    with pytest.raises(BackupFileError, match="altered"):
        unseal(bytes(blob))


def test_data_after_the_final_chunk_is_refused() -> None:
    with pytest.raises(BackupFileError, match="after its final chunk"):
        unseal(seal(b"z" * 100) + b"\0")


def test_splicing_chunks_from_another_file_is_refused() -> None:
    one, two = seal(b"a" * 300), seal(b"a" * 300)
    at, length = frames(two)[1]
    spliced = one[:at] + two[at:at + length] + one[at + length:]
    with pytest.raises(BackupFileError):
        unseal(spliced)


def test_not_a_backup() -> None:
    with pytest.raises(BackupFileError, match="not a Streamzy backup"):
        unseal(b"SQLite format 3\0" + b"\0" * 100)


@pytest.mark.parametrize("value", ["", "short", "!!!not base64!!!", "QUJD"])
def test_bad_keys_are_named(value: str) -> None:
    with pytest.raises(BackupFileError, match="STREAMZY_BACKUP_KEY"):
        parse_backup_key(value)
