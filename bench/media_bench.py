"""Media intake: time to validate and forward a 12-megapixel JPEG, and to reject over-cap images.

Run: ``.venv/bin/python -m bench.media_bench``. It drives the gateway's intake in process, with
default settings except that a local HTTP server on 127.0.0.1 is an allowed private host: for
each case, from the request's messages to the bytes that go to Triton (the contract's
messages and ``images`` tensor), or to the refusal. Triton's own time is not included: the
model decodes the image itself and that cost belongs to the engine. Prints figures (median
and min over runs, ms); asserts nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from gateway.api.chat_request import parse_chat_request
from gateway.errors import ApiError
from gateway.media.intake import intake
from gateway.registry import Registry
from gateway.settings import Settings
from tests.media.media_files import encode, media_server, padded, photo, png_bomb

RUNS = 15
MiB = 1024 * 1024


def _body(url: str) -> bytes:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }
    return json.dumps({"model": "visiongate/tiny-random-llava", "messages": [message]}).encode()


async def _time(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    await work()  # warm-up
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), min(samples)


async def main() -> None:
    """Print the figures."""
    settings = Settings(media_allowed_private_hosts=["127.0.0.1"])
    model = Registry(settings).entries[0]
    # A 12-megapixel photograph-like JPEG, at a quality that fits Groq's 4 MiB base64 cap.
    jpeg = encode(photo(4000, 3000, seed=3), "JPEG", quality=75)
    b64_body = _body("data:image/jpeg;base64," + base64.b64encode(jpeg).decode())

    async def accept(body: bytes) -> None:
        chat = parse_chat_request(body)
        media = await intake(chat.messages, model, settings, request_bytes=len(body))
        assert len(media.images) == 1

    async def reject(body: bytes, code: str) -> None:
        chat = parse_chat_request(body)
        try:
            await intake(chat.messages, model, settings, request_bytes=len(body))
        except ApiError as exc:
            assert exc.code == code, exc.code
        else:
            raise AssertionError("accepted")

    with media_server() as server:
        server.files["/photo.jpg"] = jpeg
        server.files["/over-size.png"] = padded(png_bomb(64, 64), settings.max_image_url_bytes + 1)
        url_body = _body(server.url + "/photo.jpg")
        bomb = png_bomb(1, 40_000_000)
        bomb_body = _body("data:image/png;base64," + base64.b64encode(bomb).decode())
        over_size_body = _body(server.url + "/over-size.png")
        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("12 MP JPEG, base64: validate and forward", lambda: accept(b64_body)),
            ("12 MP JPEG, URL: fetch, validate and forward", lambda: accept(url_body)),
            (
                "reject 1×40,000,000 PNG bomb (base64, from the header)",
                lambda: reject(bomb_body, "image_resolution_too_large"),
            ),
            (
                "reject URL of 20 MiB + 1 (declared Content-Length, no read)",
                lambda: reject(over_size_body, "image_too_large"),
            ),
        ]
        print(
            f"12 MP JPEG: 4000×3000, {len(jpeg) / MiB:.2f} MiB; base64 request body "
            f"{len(b64_body) / MiB:.2f} MiB; bomb PNG {len(bomb)} bytes"
        )
        print(f"{'case':<60} {'median ms':>10} {'min ms':>8}")
        for name, work in cases:
            median, best = await _time(work)
            print(f"{name:<60} {median:>10.1f} {best:>8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
