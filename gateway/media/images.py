"""Image validation: format, pixel cap from the header, a full decode, and the bytes to forward.

Everything here is blocking CPU work; intake runs it in a worker thread.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

# What the model side is known to decode; anything else is refused before decoding.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

# The pixel cap below is checked from the header before any decoding, which makes Pillow's
# own "this may be a decompression bomb" warning redundant noise; its error stays a backstop.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


class ImageError(Exception):
    """The image cannot be taken; ``code`` names the rule."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse ``width`` × ``height`` above ``max_pixels`` (exactly at the cap passes)."""
    if width * height > max_pixels:
        raise ImageError(
            f"The image is {width}×{height} = {width * height} pixels; at most {max_pixels} "
            "pixels are accepted.",
            "image_resolution_too_large",
        )


def validate_image(data: bytes, max_pixels: int) -> bytes:
    """The bytes to forward for ``data``, after checking format, pixels and integrity."""
    # Pillow refuses at open() beyond twice this; our own check, below, is the exact one.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            # Only the header has been read: the size is known, nothing is decoded yet.
            check_pixels(image.width, image.height, max_pixels)
            animated = getattr(image, "n_frames", 1) > 1
            if image.format == "JPEG":
                # Decoding at 1/8 scale still walks the whole entropy-coded stream, so a
                # truncated or corrupt file fails here, at a fraction of the full cost.
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
            if image.format == "GIF" or animated:
                # One frame is what the model sees; forwarding the animation would only cost.
                image.seek(0)
                buffer = io.BytesIO()
                image.save(buffer, "PNG")
                return buffer.getvalue()
    except UnidentifiedImageError:
        raise ImageError(
            "The data is not an image in an accepted format (JPEG, PNG, WebP, GIF, BMP).",
            "invalid_image",
        ) from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"The image has more than {max_pixels} pixels.", "image_resolution_too_large"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(
            f"The image data is truncated or corrupt ({exc}).", "invalid_image"
        ) from None
    return data
