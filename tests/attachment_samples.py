"""Files for attachment tests: images built with Pillow (with EXIF GPS tags, noise that no
compressor shortens, a polyglot tail), a small PDF, text with a marker."""

from __future__ import annotations

import io
import os

from PIL import Image

MARKER = "QUOKKA-7f3a-PLAINTEXT-MARKER"


def noise_png(width: int = 64, height: int = 64) -> bytes:
    """A PNG of random pixels: its re-encoded bytes hold long runs found nowhere else."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg_with_gps(width: int = 120, height: int = 80) -> bytes:
    """A JPEG whose EXIF says where it was taken, by which camera, and to rotate it."""
    image = Image.new("RGB", (width, height), (30, 120, 200))
    exif = image.getexif()
    exif[0x010F] = "SpyCam Inc"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 28.0, 38.0)
    gps[3] = "W"
    gps[4] = (0.0, 0.0, 5.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def gif_html_polyglot() -> bytes:
    """A valid GIF that is also an HTML page with a script (browsers sniffing it as HTML
    would run it)."""
    out = io.BytesIO()
    Image.new("P", (8, 8)).save(out, "GIF", comment=b"<script>window.pwned=1</script>")
    return out.getvalue() + b"<html><script>document.title='pwned'</script></html>"


SVG_WITH_SCRIPT = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="document.title=\'pwned\'">'
                   b"<script>document.title='pwned'</script></svg>")
HTML_PAGE = b"<!doctype html><html><body><script>document.title='pwned'</script></body></html>"


def small_pdf(text: str = MARKER) -> bytes:
    """A one-page PDF (Pillow writes it; the marker goes in as a comment)."""
    out = io.BytesIO()
    Image.new("RGB", (20, 20), (255, 255, 255)).save(out, "PDF")
    data = out.getvalue()
    return data.replace(b"\n", f"\n%{text}\n".encode(), 1)


def text_file() -> bytes:
    return f"notes\n{MARKER}\nend\n".encode()
