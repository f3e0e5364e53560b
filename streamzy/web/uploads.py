"""Reading an upload's body: bounded in size and time, kept in memory, parsed off the loop.

Every other route takes at most STREAMZY_MAX_BODY_BYTES (Quart's MAX_CONTENT_LENGTH); the
upload routes take the attachment limit plus room for multipart framing. The request class
picks the bound when the request is created, from its method and path, so a declared
Content-Length over it is refused before a byte of the body is read, and the body is then
read with the same cap as it streams in (a chunked body has no Content-Length).

No upload ever touches the disk as plaintext: Werkzeug's form parser spools file parts
over 500 KB to a temporary file, so this request class gives it in-memory buffers that
refuse to grow past the request's bound, for every route.
"""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any
from urllib.parse import unquote

from quart import Request, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout
from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

from streamzy.guards.validation import InputError
from streamzy.services.errors import TooLarge, Unsupported

UPLOAD_PATH = re.compile(r"^(?:/api/v1)?/rooms/[0-9]{1,19}/files$")
MULTIPART_OVERHEAD = 64 * 1024
FILE_FIELD = "file"
NAME_HEADER = "X-Filename"
FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# Slow clients get this long per upload (10 MiB at ~100 KiB/s); then 408.
UPLOAD_SECONDS = 120.0


class CappedBuffer(io.BytesIO):
    """A form file part in memory that refuses to grow past the shared budget."""

    def __init__(self, budget: list[int]) -> None:
        super().__init__()
        self._budget = budget

    def write(self, data: Any) -> int:
        self._budget[0] -= len(data)
        if self._budget[0] < 0:
            raise RequestEntityTooLarge()
        return super().write(data)


def request_class(upload_max_bytes: int) -> type[Request]:
    """Quart's Request with the upload routes' body bound and in-memory form files."""
    upload_cap = upload_max_bytes + MULTIPART_OVERHEAD

    class StreamzyRequest(Request):
        def __init__(self, method: str, scheme: str, path: str, *args: Any,
                     **kwargs: Any) -> None:
            upload = method == "POST" and UPLOAD_PATH.match(path) is not None
            if upload:
                kwargs["max_content_length"] = upload_cap
            super().__init__(method, scheme, path, *args, **kwargs)
            if upload:
                self.max_content_length = upload_cap

        def make_form_data_parser(self) -> Any:
            parser = super().make_form_data_parser()
            budget = [self.max_content_length or 0]
            parser.stream_factory = lambda *_args, **_kw: CappedBuffer(budget)
            return parser

    return StreamzyRequest


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge("file_too_large", f"Files are limited to {max_bytes / (1024 * 1024):g} MiB.")


async def read_body(cap: int, max_bytes: int) -> bytes:
    """The whole body, refused (413) as soon as it passes ``cap`` bytes, or before reading
    when its declared length already does."""
    declared = request.content_length
    if declared is not None and declared > cap:
        raise too_large(max_bytes)
    received = bytearray()
    try:
        async with asyncio.timeout(UPLOAD_SECONDS):
            async for chunk in request.body:
                received += chunk
                if len(received) > cap:
                    raise too_large(max_bytes)
    except TimeoutError:
        raise RequestTimeout() from None
    except RequestEntityTooLarge:
        raise too_large(max_bytes) from None
    return bytes(received)


def _bad_multipart() -> InputError:
    return InputError("invalid_multipart",
                      message=f"Send one file as the multipart field '{FILE_FIELD}'.")


def parse_multipart(body: bytes, boundary: bytes) -> tuple[str, bytes]:
    """The first file part (blocking: run in a thread); InputError when malformed."""
    decoder = MultipartDecoder(boundary, max_parts=8)
    try:
        decoder.receive_data(body)
        decoder.receive_data(None)
        name: str | None = None
        parts: list[bytes] = []
        in_file = False
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData | Epilogue):
                break
            if isinstance(event, File) and name is None:
                name, in_file = event.filename or "file", True
            elif isinstance(event, Data) and in_file:
                parts.append(event.data)
                if not event.more_data:
                    return name or "file", b"".join(parts)
            elif not isinstance(event, Data):
                in_file = False
    except (ValueError, RequestEntityTooLarge):
        raise _bad_multipart() from None
    raise _bad_multipart()


def header_name() -> str:
    """The raw body's file name: ``X-Filename``, percent-encoded UTF-8."""
    raw = request.headers.get(NAME_HEADER, "")
    try:
        return unquote(raw[:1024], errors="strict")
    except UnicodeDecodeError:
        raise InputError("invalid_filename",
                         message=f"{NAME_HEADER} must be percent-encoded UTF-8.") from None


async def read_upload(max_bytes: int) -> tuple[str, bytes]:
    """(file name as the client gave it, bytes) from a raw body or a multipart form."""
    mimetype = request.mimetype
    if mimetype == FORM_URLENCODED:
        raise Unsupported("unsupported_media_type",
                          "Send the file as the body, or as multipart/form-data.")
    if mimetype == MULTIPART:
        boundary = request.mimetype_params.get("boundary", "")
        if not boundary or len(boundary) > 200:
            raise _bad_multipart()
        body = await read_body(max_bytes + MULTIPART_OVERHEAD, max_bytes)
        try:
            encoded = boundary.encode("ascii")
        except UnicodeEncodeError:
            raise _bad_multipart() from None
        return await asyncio.to_thread(parse_multipart, body, encoded)
    return header_name(), await read_body(max_bytes, max_bytes)
