"""What an uploaded file is, decided by its bytes (magic numbers), never by its name or the
Content-Type the client sent: both are the uploader's word, and a browser that trusted them
could be made to run a page an attacker wrote.

The allowlist (SECURITY.md, "Attachments"):

* images: PNG, JPEG, GIF, WebP. Sniffed here, then opened and re-encoded by Pillow
  (services/images.py): what is stored is Pillow's output, so a polyglot (a GIF that is also
  an HTML page or a script) loses everything that is not pixels;
* PDF (``%PDF-`` at the very start; always served as a download);
* ZIP archives (served as a download; never opened on the server, so no zip bomb can go off);
* plain text: valid UTF-8 without NUL bytes, served as ``text/plain; charset=utf-8``
  (markup in it, an SVG or HTML file, stays text: ``nosniff`` and the sandbox CSP).

Everything else is refused with ``unsupported_file_type``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileKind:
    content_type: str
    pillow_format: str = ""  # set for images: the only decoder Pillow may use on it

    @property
    def is_image(self) -> bool:
        return bool(self.pillow_format)


PNG = FileKind("image/png", "PNG")
JPEG = FileKind("image/jpeg", "JPEG")
GIF = FileKind("image/gif", "GIF")
WEBP = FileKind("image/webp", "WEBP")
PDF = FileKind("application/pdf")
ZIP = FileKind("application/zip")
TEXT = FileKind("text/plain")
KINDS = (PNG, JPEG, GIF, WEBP, PDF, ZIP, TEXT)
IMAGE_TYPES = frozenset(k.content_type for k in KINDS if k.is_image)
# Shown inline (images only); everything else is served as an attachment (a download).
INLINE_TYPES = IMAGE_TYPES


def sniff(data: bytes) -> FileKind | None:
    """The allowlisted kind ``data`` is, by its leading bytes; None when it is none of them."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ZIP
    if is_plain_text(data):
        return TEXT
    return None


def is_plain_text(data: bytes) -> bool:
    """Valid UTF-8 (a BOM allowed) with no NUL byte: what text editors write."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
