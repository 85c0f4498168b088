"""A JPEG's integrity without decoding its pixels: the marker walk and libjpeg's headers.

Also where the check runs: a small base64 JPEG on the event loop, anything else on a media
worker.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable

import pytest

from gateway.api.chat_request import parse_chat_request
from gateway.api.plan import plan_chat
from gateway.media.images import INLINE_JPEG_BYTES, ImageError, cheap_to_check, validate_image
from gateway.media.intake import Media, intake
from gateway.media.workers import for_settings
from gateway.settings import Settings
from tests.support.chat import MODEL, image
from tests.support.media import data_uri, encode, noise_png, photo
from tests.support.models import model_entry

CAP = 33_177_600
PICTURE = photo(320, 240)
VARIANTS = {
    "baseline": encode(PICTURE, "JPEG"),
    "progressive": encode(PICTURE, "JPEG", progressive=True),
    "restart-markers": encode(PICTURE, "JPEG", restart_marker_blocks=2),
    "4:4:4": encode(PICTURE, "JPEG", subsampling=0, quality=95),
    "grey": encode(PICTURE.convert("L"), "JPEG"),
    "cmyk": encode(PICTURE.convert("CMYK"), "JPEG"),
}


def segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset, length) of each segment before the first scan's data, SOS included."""
    found, at = [], 2
    while True:
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        found.append((marker, at, length))
        if marker == 0xDA:
            return found
        at += 2 + length


def refused(data: bytes) -> bool:
    """Whether validation refuses ``data`` as an invalid image."""
    try:
        validate_image(data, CAP)
    except ImageError as exc:
        assert exc.code == "invalid_image"
        return True
    return False


@pytest.mark.parametrize("name", VARIANTS)
def test_valid_jpegs_are_forwarded_unchanged(name: str) -> None:
    data = VARIANTS[name]
    assert validate_image(data, CAP) == data


def test_bytes_after_the_end_marker_are_ignored_as_decoders_do() -> None:
    data = VARIANTS["baseline"] + b"trailing"
    assert validate_image(data, CAP) == data


@pytest.mark.parametrize("name", ["baseline", "progressive", "restart-markers"])
def test_a_jpeg_cut_anywhere_is_refused(name: str) -> None:
    data = VARIANTS[name]
    scan = segments(data)[-1][1]
    cuts = [*range(4, scan + 12, 7), *range(scan + 12, len(data), 97), len(data) - 2]
    assert [cut for cut in cuts if not refused(data[:cut])] == []


def test_a_table_libjpeg_refuses_is_refused() -> None:
    data = VARIANTS["baseline"]
    _, at, _ = next(s for s in segments(data) if s[0] == 0xC4)
    bogus = bytearray(data)
    bogus[at + 5 : at + 21] = bytes([255] * 16)  # Huffman code counts summing past 256
    assert refused(bytes(bogus))


def test_a_missing_quantisation_table_is_refused() -> None:
    data = VARIANTS["baseline"]
    kept = [data[at : at + 2 + length] for marker, at, length in segments(data) if marker != 0xDB]
    scan = segments(data)[-1][1]
    assert refused(data[:2] + b"".join(kept[:-1]) + data[scan:])


def test_a_scan_before_its_frame_header_is_refused() -> None:
    data = VARIANTS["baseline"]
    parts = segments(data)
    sof = next(s for s in parts if s[0] == 0xC0)
    scan = parts[-1][1]
    # SOF moved after the scan's data: Pillow reads the header, the walk refuses the order.
    head = data[: sof[1]] + data[sof[1] + 2 + sof[2] : scan]
    body = data[scan:-2] + data[sof[1] : sof[1] + 2 + sof[2]] + b"\xff\xd9"
    assert refused(head + body)


def test_only_small_jpegs_are_cheap_to_check() -> None:
    assert cheap_to_check(VARIANTS["baseline"])
    assert not cheap_to_check(encode(PICTURE, "PNG"))
    big = VARIANTS["baseline"] + bytes(INLINE_JPEG_BYTES)
    assert not cheap_to_check(big)


def _media(url: str, settings: Settings) -> Awaitable[Media]:
    content = [{"type": "text", "text": "Describe."}, image(url)]
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}]})
    plan = plan_chat(parse_chat_request(body.encode(), settings), settings)
    model = model_entry(settings)
    return intake(plan.media, model, settings, request_bytes=len(body), org_id=1)


async def test_a_small_base64_jpeg_is_checked_without_a_media_worker() -> None:
    settings = Settings(media_threads=1, media_threads_per_org=1)
    workers = for_settings(settings)
    release = threading.Event()
    held = asyncio.create_task(workers.run(2, lambda cancelled: release.wait(30)))
    while workers.running < 1:  # noqa: ASYNC110 (set on the loop by a worker thread)
        await asyncio.sleep(0.001)  # the only thread is taken
    try:
        jpeg = VARIANTS["baseline"]
        media = await asyncio.wait_for(_media(data_uri(jpeg, "image/jpeg"), settings), 10)
        assert media.images == [jpeg]
        png = noise_png(64, 48)
        waiting = asyncio.ensure_future(_media(data_uri(png, "image/png"), settings))
        while workers.waiting < 1:  # noqa: ASYNC110 (a count, no event to wait on)
            await asyncio.sleep(0.001)  # a PNG is checked on a worker: it waits for it
        assert not waiting.done()
        release.set()
        assert (await asyncio.wait_for(waiting, 10)).images == [png]
    finally:
        release.set()
        await held
