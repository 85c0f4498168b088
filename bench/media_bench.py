"""Media intake: latency of ordinary images, and the cost of the worst media within the caps.

Run: ``.venv/bin/python -m bench.media_bench``. It drives the gateway's intake in process, with
default settings except that a local HTTP server on 127.0.0.1 is an allowed private host: for
each case, from the request's messages to the bytes that go to Triton (the contract's
messages and ``images`` tensor), or to the refusal. Triton's own time is not included: the
model decodes the image itself and that cost belongs to the engine.

1. Latency (median and min over runs, ms): the gateway benchmark's 640×480 JPEG by base64
   (checked on the event loop), a 12-megapixel JPEG by base64 and by URL, and refusals of
   over-cap images.
2. The worst requests within the caps, each intake in a fresh process: CPU seconds (all
   threads), wall seconds, peak RSS above the process's RSS before intake (from ``VmHWM``,
   reset first) and the RSS still held after it, and the outcome. ``--worst`` runs only these.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.gateway_bench import jpeg_640x480
from gateway.api.chat_request import parse_chat_request
from gateway.api.plan import plan_chat
from gateway.errors import ApiError
from gateway.media.intake import intake
from gateway.settings import Settings
from tests.support.media import (
    data_uri,
    encode,
    media_server,
    padded,
    photo,
    png16_rgba,
    png_bomb,
    repeated_video,
)
from tests.support.models import model_entry

RUNS = 15
MiB = 1024 * 1024


def _body(url: str, count: int = 1, kind: str = "image") -> bytes:
    part = {"type": f"{kind}_url", f"{kind}_url": {"url": url}}
    message = {"role": "user", "content": [{"type": "text", "text": "What's in this?"}]}
    message["content"].extend([part] * count)  # type: ignore[attr-defined]
    return json.dumps({"model": "visiongate/tiny-vlm", "messages": [message]}).encode()


async def _time(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    await work()  # warm-up
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), min(samples)


async def latency() -> None:
    """Print the latency figures."""
    settings = Settings(media_allowed_private_hosts=["127.0.0.1"])
    model = model_entry(settings)
    # A 12-megapixel photograph-like JPEG, at a quality that fits Groq's 4 MiB base64 cap.
    jpeg = encode(photo(4000, 3000, seed=3), "JPEG", quality=75)
    b64_body = _body("data:image/jpeg;base64," + base64.b64encode(jpeg).decode())
    small_body = _body("data:image/jpeg;base64," + base64.b64encode(jpeg_640x480()).decode())

    async def accept(body: bytes) -> None:
        chat = parse_chat_request(body, settings)
        media = await intake(
            plan_chat(chat, settings).media, model, settings, request_bytes=len(body), org_id=1
        )
        assert len(media.images) == 1

    async def reject(body: bytes, code: str) -> None:
        chat = parse_chat_request(body, settings)
        try:
            await intake(
                plan_chat(chat, settings).media, model, settings, request_bytes=len(body), org_id=1
            )
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
            ("640×480 JPEG, base64: validate and forward", lambda: accept(small_body)),
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


def _worst_bodies() -> list[tuple[str, bytes]]:
    """The worst requests within the default caps (docs/media.md)."""
    png = png16_rgba(5760, 5760)  # 33,177,600 pixels: exactly at the pixel cap
    # 1080p, 60 fps, 583 s: under the 600 s and 32 MiB caps, 35,000 frames.
    one_key = repeated_video(583, 60, (1920, 1080), gop=1_000_000)
    key_each_10s = repeated_video(583, 60, (1920, 1080), gop=600)
    return [
        ("5 × 5760² RGBA 16-bit PNG, base64", _body(data_uri(png, "image/png"), count=5)),
        ("1080p60 583 s MP4, one keyframe", _body(data_uri(one_key, "video/mp4"), kind="video")),
        (
            "1080p60 583 s MP4, a keyframe each 10 s",
            _body(data_uri(key_each_10s, "video/mp4"), kind="video"),
        ),
    ]


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _worst_one(path: Path) -> None:
    """Intake of the body in ``path``, in this process; print one JSON line of figures."""
    settings = Settings()
    model = dataclasses.replace(model_entry(settings), video=True)
    body = path.read_bytes()
    chat = parse_chat_request(body, settings)
    work = intake(
        plan_chat(chat, settings).media, model, settings, request_bytes=len(body), org_id=1
    )
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        media = asyncio.run(work)
        outcome = f"accepted: {len(media.images)} images, {len(media.video_frames)} frames"
    except ApiError as exc:
        outcome = f"refused: {exc.status_code} {exc.code}"
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    figures = {
        "cpu_s": cpu,
        "wall_s": wall,
        "peak_mib": (_rss_kib("VmHWM") - before) / 1024,
        "held_mib": (_rss_kib("VmRSS") - before) / 1024,
        "outcome": outcome,
    }
    print(json.dumps(figures))


def worst() -> None:
    """Print the cost of each worst request, each measured in a fresh process."""
    print(
        f"{'worst request within the caps':<42} {'CPU s':>6} {'wall s':>7} "
        f"{'peak MiB':>9} {'held MiB':>9}  outcome"
    )
    with tempfile.TemporaryDirectory() as folder:
        for name, body in _worst_bodies():
            path = Path(folder) / "body.json"
            path.write_bytes(body)
            child = [sys.executable, "-m", "bench.media_bench", "--one", str(path)]
            line = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            f = json.loads(line.splitlines()[-1])
            print(
                f"{name:<42} {f['cpu_s']:>6.2f} {f['wall_s']:>7.2f} {f['peak_mib']:>9.0f} "
                f"{f['held_mib']:>9.0f}  {f['outcome']}"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        _worst_one(Path(sys.argv[2]))
    else:
        if sys.argv[1:2] != ["--worst"]:
            asyncio.run(latency())
        worst()
