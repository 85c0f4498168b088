"""Image validation: format, pixel cap from the header, integrity, and the bytes to forward.

Integrity is checked without decoding pixels where the format allows: a JPEG's markers are
walked and libjpeg reads its headers (:func:`_check_jpeg`), a PNG is inflated in pieces and
checked (:func:`_check_png`), other formats are decoded once. Everything here is blocking
CPU work; intake runs it on a media worker, which sets ``cancelled`` when nobody waits any
more.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from gateway.media.workers import check

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


# PNG: bits per pixel per bit of depth, by colour type; Adam7's passes (x0, y0, dx, dy).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
# How much inflated data is held at once while a PNG is checked.
PNG_PIECE_BYTES = 1 << 20


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """Each chunk's type and data, its CRC checked, up to IEND."""
    view = memoryview(data)
    at = 8
    while True:
        if at + 12 > len(data):
            raise ValueError("truncated PNG chunk")
        length, kind = struct.unpack_from(">I4s", data, at)
        body = view[at + 8 : at + 8 + length]
        if len(body) < length or at + 12 + length > len(data):
            raise ValueError("truncated PNG chunk")
        (crc,) = struct.unpack_from(">I", data, at + 8 + length)
        if zlib.crc32(body, zlib.crc32(kind)) != crc:
            raise SyntaxError(f"broken PNG chunk {kind!r} (CRC mismatch)")
        yield kind, body
        if kind == b"IEND":
            return
        at += 12 + length


def _png_rows(width: int, height: int, bits: int, interlaced: bool) -> list[tuple[int, int]]:
    """The (rows, bytes per row with its filter byte) of each pass of the image data."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    rows = []
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            rows.append((h, 1 + -(-(w * bits) // 8)))
    return rows


def _check_png(data: bytes, cancelled: threading.Event) -> None:
    """Check a PNG's chunks and image data without keeping its pixels.

    Every chunk's CRC, the zlib stream of the IDAT chunks (deflate and its Adler-32), its
    exact inflated length for the header's size, depth and interlacing, and every row's
    filter type; the data is inflated :data:`PNG_PIECE_BYTES` at a time and dropped.
    Not checked: what the filtered bytes decode to (any bytes are valid pixels).
    """
    chunks = _png_chunks(data)
    kind, header = next(chunks)
    if kind != b"IHDR" or len(header) != 13:
        raise SyntaxError("PNG does not start with IHDR")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if colour not in _PNG_CHANNELS:
        raise SyntaxError(f"unknown PNG colour type {colour}")
    rows = _png_rows(width, height, depth * _PNG_CHANNELS[colour], interlace == 1)
    # The offsets in the inflated data where each row's filter byte is, pass by pass.
    passes, offset = [], 0
    for count, stride in rows:
        passes.append((offset, offset + count * stride, stride))
        offset += count * stride
    expected, inflated = offset, 0
    inflater = zlib.decompressobj()
    for kind, body in chunks:
        check(cancelled)
        if kind != b"IDAT":
            continue
        if inflater.eof:
            raise SyntaxError("PNG data after the end of its zlib stream")
        pending: bytes | memoryview = body
        while pending:
            check(cancelled)
            piece = inflater.decompress(pending, PNG_PIECE_BYTES)
            pending = inflater.unconsumed_tail
            if inflated + len(piece) > expected:
                raise SyntaxError("PNG image data longer than its size says")
            array, stop = np.frombuffer(piece, np.uint8), inflated + len(piece)
            for start, end, stride in passes:
                if start < stop and end > inflated:
                    first = max(start, inflated + (start - inflated) % stride)
                    filters = array[first - inflated : min(end, stop) - inflated : stride]
                    if filters.max(initial=0) > 4:
                        raise SyntaxError("PNG row with an unknown filter type")
            inflated = stop
            if inflater.eof and (pending or inflater.unused_data):
                raise SyntaxError("PNG data after the end of its zlib stream")
    if not inflater.eof or inflated != expected:
        raise ValueError("PNG image data is truncated")


# JPEG: the start-of-frame markers (baseline, progressive, lossless, arithmetic), and in
# entropy-coded data the next marker (0xFF not followed by a stuffed 0x00 or a restart).
_JPEG_FRAMES = frozenset(
    (*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), 0xCD, 0xCE, 0xCF)
)
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg_first_scan(data: bytes) -> int:
    """Walk a JPEG's markers from SOI to EOI; where the first scan's entropy data starts.

    Every segment's length must fit, a frame header comes before the first scan, and every
    scan's entropy-coded data must be followed by a marker, the last one EOI: a truncated
    file fails here. Bytes after EOI are ignored, as decoders do.
    """
    if data[:2] != b"\xff\xd8":
        raise SyntaxError("not a JPEG (no SOI marker)")
    at, size, frame, first_scan = 2, len(data), False, 0
    while True:
        if at >= size or data[at] != 0xFF:
            raise SyntaxError("JPEG marker expected")
        while at < size and data[at] == 0xFF:  # fill bytes
            at += 1
        if at >= size:
            raise ValueError("truncated JPEG")
        marker = data[at]
        at += 1
        if marker == _JPEG_EOI:
            if not first_scan:
                raise SyntaxError("JPEG without image data")
            return first_scan
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        if marker in (0x00, 0xD8):
            raise SyntaxError(f"unexpected JPEG marker 0x{marker:02X}")
        length = int.from_bytes(data[at : at + 2], "big")
        if length < 2 or at + length > size:
            raise ValueError("truncated JPEG segment")
        frame = frame or marker in _JPEG_FRAMES
        at += length
        if marker == _JPEG_SOS:
            if not frame:
                raise SyntaxError("JPEG scan before its frame header")
            first_scan = first_scan or at
            found = _JPEG_NEXT_MARKER.search(data, at)
            if found is None:
                raise ValueError("JPEG image data is truncated")
            at = found.start()


def _check_jpeg(image: ImageFile.ImageFile, data: bytes) -> None:
    """Check a JPEG's structure (:func:`_jpeg_first_scan`), then have libjpeg take its headers.

    libjpeg reads every table and the frame and scan headers up to the first entropy-coded
    byte, and prepares decoding at 1/8 scale, which refuses what decoding would (undefined
    or bogus tables, bad component selectors); the entropy-coded data is not decoded.
    Decoding it would cost about 20 times more and finds little more: libjpeg only warns
    about corrupt entropy data, and the walk has found truncation.
    """
    first_scan = _jpeg_first_scan(data)
    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
    image.load_prepare()
    tile = image.tile[0]
    decoder = Image._getdecoder(image.mode, "jpeg", tile.args, image.decoderconfig)
    decoder.setimage(image.im, tile.extents)
    try:
        _, error = decoder.decode(data[tile.offset : first_scan])
    finally:
        decoder.cleanup()
    if error < 0:
        raise ImageFile._get_oserror(error, encoder=False)


# A JPEG up to this size is checked where it is (intake: on the event loop): reading its
# markers costs about 1 µs per KiB, less than the hop to a media worker and back.
INLINE_JPEG_BYTES = 256 * 1024


def cheap_to_check(data: bytes) -> bool:
    """Whether :func:`validate_image` of ``data`` costs less than a hop to another thread."""
    return len(data) <= INLINE_JPEG_BYTES and data[:3] == b"\xff\xd8\xff"


def validate_image(data: bytes, max_pixels: int, cancelled: threading.Event | None = None) -> bytes:
    """The bytes to forward for ``data``, after checking format, pixels and integrity.

    ``cancelled``, once set, stops a PNG's check at its next piece (:class:`Cancelled`).
    """
    # Pillow refuses at open() beyond twice this; our own check, below, is the exact one.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            # Only the header has been read: the size is known, nothing is decoded yet.
            check_pixels(image.width, image.height, max_pixels)
            animated = getattr(image, "n_frames", 1) > 1
            if image.format == "PNG" and not animated:
                _check_png(data, cancelled or threading.Event())
                return data
            if image.format == "JPEG":
                _check_jpeg(image, data)
                return data
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
    except (OSError, ValueError, SyntaxError, EOFError, zlib.error) as exc:
        raise ImageError(
            f"The image data is truncated or corrupt ({exc}).", "invalid_image"
        ) from None
    return data
