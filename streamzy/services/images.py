"""Pillow work on uploaded images (blocking: always called in a worker thread).

An image is decoded with the one decoder its magic bytes named (``formats=[...]``), checked
against the pixel budget before its pixels are decoded, turned upright by its EXIF
orientation, then encoded again from its pixels alone: EXIF (GPS position, camera serial),
XMP, ICC profiles, comments and anything appended after the image data (the HTML or script
half of a polyglot) are not carried over. The thumbnail is drawn here too, as WebP.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from streamzy.services.file_types import FileKind

# Decompression bombs: Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; we
# refuse anything above it ourselves, before decoding a pixel (a tiny PNG can claim a
# 50,000 x 50,000 canvas). Set at import: every decode in this process obeys it.
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
MAX_FRAMES = 100  # animated GIF / WebP
MAX_ANIMATION_PIXELS = 200_000_000  # width x height x frames
THUMBNAIL_EDGE = 320
JPEG_QUALITY = 90
# What survives re-encoding from ``info``: how to show the pixels, nothing about where,
# when or with what they were taken.
KEEP_INFO = ("transparency", "duration", "loop", "background")


class ImageProblem(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# What Pillow's decoders raise on damaged or truncated files (the GIF plugin raises
# IndexError and struct.error mid-stream): each one is a refusal, never a 500.
DAMAGED = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, struct.error)


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    width: int
    height: int
    thumbnail: bytes


def _open(data: bytes, kind: FileKind) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind.pillow_format])
            width, height = image.size
            # Counting frames reads every frame: a truncated GIF fails here, not later.
            frames = int(getattr(image, "n_frames", 1) or 1)
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, *DAMAGED) as exc:
        raise _refusal(exc) from None
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise ImageProblem("image_too_large",
                           f"Images may have at most {MAX_PIXELS // 1_000_000} megapixels.")
    if frames > MAX_FRAMES or width * height * frames > MAX_ANIMATION_PIXELS:
        raise ImageProblem("image_too_large", f"Animations may have at most {MAX_FRAMES} "
                                              "frames of a modest size.")
    return image


def _refusal(exc: BaseException) -> ImageProblem:
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return ImageProblem("image_too_large",
                            f"Images may have at most {MAX_PIXELS // 1_000_000} megapixels.")
    return ImageProblem("invalid_image", "The image could not be read.")


def _bare(image: Image.Image) -> Image.Image:
    """The frame upright, with only display information left in ``info``."""
    upright = ImageOps.exif_transpose(image) or image
    if upright is image:
        upright = image.copy()
    upright.info = {k: v for k, v in image.info.items() if k in KEEP_INFO}
    return upright


def _for(kind: FileKind, image: Image.Image) -> Image.Image:
    """A mode the target encoder writes without surprises."""
    if kind.pillow_format == "JPEG":
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    if kind.pillow_format == "WEBP":
        alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        wanted = "RGBA" if alpha else "RGB"
        return image if image.mode == wanted else image.convert(wanted)
    if kind.pillow_format == "GIF":
        return image if image.mode in ("P", "L") else image.convert("P")
    return image  # PNG writes every mode Pillow decodes from a PNG


def _encode(kind: FileKind, frames: list[Image.Image]) -> bytes:
    out = io.BytesIO()
    first = _for(kind, frames[0])
    options: dict[str, object] = {}
    if kind.pillow_format == "JPEG":
        options = {"quality": JPEG_QUALITY}
    elif kind.pillow_format == "WEBP":
        options = {"quality": JPEG_QUALITY}
    if len(frames) > 1:
        options.update(save_all=True, append_images=[_for(kind, f) for f in frames[1:]],
                       duration=[int(f.info.get("duration", 100) or 100) for f in frames],
                       loop=int(frames[0].info.get("loop", 0) or 0))
    first.save(out, kind.pillow_format, **options)
    return out.getvalue()


def thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGBA" if image.mode in ("RGBA", "LA", "PA", "P") else "RGB")
    small.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
    out = io.BytesIO()
    small.save(out, "WEBP", quality=80)
    return out.getvalue()


def clean_image(data: bytes, kind: FileKind) -> CleanImage:
    """Decode, check, orient and re-encode ``data`` (blocking); ImageProblem when refused."""
    image = _open(data, kind)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            frames = [_bare(frame) for frame in ImageSequence.Iterator(image)]
        if not frames:
            raise ImageProblem("invalid_image", "The image could not be read.")
        encoded = _encode(kind, frames)
        return CleanImage(encoded, frames[0].width, frames[0].height, thumbnail(frames[0]))
    except ImageProblem:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, *DAMAGED) as exc:
        raise _refusal(exc) from None
    finally:
        image.close()
