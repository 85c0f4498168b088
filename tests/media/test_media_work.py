"""The work one request's media may cost: decoded frames and seconds per video, memory per
image, fair shares of the media workers, and no work left running for a client that left.

The worst videos are long-GOP H.264 (one keyframe, then only P-frames) made cheaply by
repeating packets (``repeated_video``): at 1080p, 60 fps and 583 s (under every cap) the
code before this work decoded all ~35,000 frames, about 20 s of CPU, and answered 200.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest

from gateway.api.chat_request import parse_chat_request
from gateway.api.plan import plan_chat
from gateway.media.images import ImageError, validate_image
from gateway.media.intake import intake
from gateway.media.video import Sampling, sample_frames
from gateway.media.workers import Cancelled, MediaWorkers
from gateway.settings import Settings
from gateway.triton_process import EmbeddedTriton
from tests.support.chat import MODEL, ask, image, refused, video_url
from tests.support.media import data_uri, encode, photo, png16_rgba, png_chunk, repeated_video
from tests.support.models import model_entry
from tests.support.processes import GatewayProcess, start_gateway, visiongate

MiB = 1024 * 1024
P1 = "messages[0].content[1]"
SAMPLING = Sampling(
    fps=2.0,
    max_frames=32,
    max_duration_s=600.0,
    max_pixels=33_177_600,
    jpeg_quality=90,
    max_decoded_frames=10_000,
    timeout_s=15.0,
)


@pytest.fixture(scope="module")
def long_gop() -> bytes:
    """1080p, 60 fps, 583 s, one keyframe: 35,000 frames to reach the last sample point."""
    return repeated_video(583, 60, (1920, 1080), gop=1_000_000)


@pytest.fixture(scope="module")
def work_gateway(
    triton: EmbeddedTriton, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """Two media threads, one per organisation; otherwise the default caps."""
    env = {"VISIONGATE_MEDIA_THREADS": "2", "VISIONGATE_MEDIA_THREADS_PER_ORG": "1"}
    log_path = tmp_path_factory.mktemp("work-gateway") / "gateway.log"
    process = start_gateway(triton.http_url, log_path, api_key, env=env)
    try:
        yield process
    finally:
        process.stop()


def _client(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def _cpu_s(pid: int) -> float:
    """CPU seconds (all threads) that process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_long_gop_video_is_refused_within_the_decoded_frame_cap(
    work_gateway: GatewayProcess, long_gop: bytes
) -> None:
    client = _client(work_gateway, work_gateway.api_key)
    message = refused(
        lambda: ask(client, video_url(data_uri(long_gop, "video/mp4"))),
        400,
        "video_too_complex",
        f"{P1}.video_url.url",
    )
    assert "10000 decoded frames" in message


def test_decoding_stops_at_the_decode_timeout(long_gop: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(ImageError) as caught:
        sample_frames(long_gop, replace(SAMPLING, max_decoded_frames=10**9, timeout_s=0.5))
    assert caught.value.code == "video_decode_timeout"
    assert time.monotonic() - started < 10  # the whole video: ~20 s of CPU


def test_a_huge_fps_does_not_overflow() -> None:
    clip = repeated_video(2, 10, (64, 48), gop=10)
    assert len(sample_frames(clip, replace(SAMPLING, fps=1e308))) == 20  # every frame


def test_cancelling_a_decode_stops_its_thread_and_frees_the_slot(long_gop: bytes) -> None:
    workers = MediaWorkers(threads=1, per_org=1)
    slow = replace(SAMPLING, max_decoded_frames=10**9, timeout_s=600.0)
    started, stopped = threading.Event(), threading.Event()

    def job(cancelled: threading.Event) -> list[bytes]:
        started.set()
        try:
            return sample_frames(long_gop, slow, cancelled)
        except Cancelled:
            stopped.set()
            raise

    async def scenario() -> None:
        task = asyncio.create_task(workers.run(1, job))
        queued = asyncio.create_task(workers.run(1, job))
        assert await asyncio.to_thread(started.wait, 10)
        deadline = time.monotonic() + 10
        while (workers.running, workers.waiting) != (1, 1):  # one decoding, one queued
            assert time.monotonic() < deadline, (workers.running, workers.waiting)
            await asyncio.sleep(0.01)
        task.cancel()
        queued.cancel()
        await asyncio.gather(task, queued, return_exceptions=True)
        assert workers.waiting == 0
        # The uncancelled decode: ~20 s of CPU.
        assert await asyncio.to_thread(stopped.wait, 10)
        deadline = time.monotonic() + 10
        while workers.running:  # until the thread's end reaches the loop
            assert time.monotonic() < deadline, "the cancelled decode never freed its slot"
            await asyncio.sleep(0.01)
        # The thread is free: the next job runs at once.
        assert await workers.run(2, lambda cancelled: "done") == "done"

    asyncio.run(scenario())


def test_one_organisation_flooding_slow_videos_does_not_starve_another(
    work_gateway: GatewayProcess, long_gop: bytes
) -> None:
    name = f"media-other-{uuid.uuid4().hex[:8]}"
    visiongate("orgs", "create", name, "--tier", "enterprise")
    other_key = visiongate("keys", "create", "--org", name, "--name", "t").splitlines()[-1]
    content = [{"type": "text", "text": "Describe."}, video_url(data_uri(long_gop, "video/mp4"))]
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 3}
    finished: list[float] = []

    def flood() -> None:
        # Gives up (disconnects) after 8 s: the gateway must drop its work then. The first
        # may be refused before that (video_too_complex); the rest wait for the org's share.
        try:
            response = httpx.post(
                work_gateway.url + "/v1/chat/completions",
                json=body,
                headers=work_gateway.headers,
                timeout=httpx.Timeout(8.0, connect=5.0),
            )
            assert response.json()["error"]["code"] == "video_too_complex"
        except httpx.ReadTimeout:
            pass
        finished.append(time.monotonic())

    pid = work_gateway.process.pid
    with ThreadPoolExecutor(8) as pool:
        floods = [pool.submit(flood) for _ in range(8)]
        # All eight in intake: one decoding, seven waiting for the org's share (no gauge shows
        # intake's queue, so the test gives them a second to get there).
        time.sleep(1.0)
        png = encode(photo(64, 48), "PNG")
        answer = ask(_client(work_gateway, other_key), image(data_uri(png, "image/png")))
        answered_at = time.monotonic()
        assert answer.choices[0].finish_reason in ("stop", "length")
        for one in floods:
            one.result()
    assert answered_at < min(finished)  # while every flood request was still waiting
    # The gateway's CPU over a window once the floods are gone: the window is the measurement.
    time.sleep(1.0)
    before = _cpu_s(pid)
    time.sleep(3.0)
    # Eight abandoned decodes would keep both cores busy for minutes; an idle gateway: ~0.
    assert _cpu_s(pid) - before < 1.0, work_gateway.log_tail()


def test_five_at_cap_pngs_are_checked_in_bounded_memory() -> None:
    """Peak RSS of intake for five 5760 × 5760 16-bit RGBA PNGs (docs/media.md: < 64 MiB)."""
    png = png16_rgba(5760, 5760)
    content = [{"type": "text", "text": "Describe."}]
    content += [image(data_uri(png, "image/png"))] * 5
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}]})
    settings = Settings(media_threads=2)
    model = model_entry(settings)
    chat = parse_chat_request(body.encode(), settings)

    def rss_kib(field: str) -> int:
        status = Path("/proc/self/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

    before = rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    media = asyncio.run(
        intake(plan_chat(chat, settings).media, model, settings, request_bytes=len(body), org_id=1)
    )
    peak_mib = (rss_kib("VmHWM") - before) / 1024
    assert media.images == [png] * 5
    assert peak_mib < 64, peak_mib  # a full decode: 132 MiB per image


def _png(idat: bytes, width: int = 4, height: int = 2) -> bytes:
    header = (width).to_bytes(4, "big") + (height).to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


ROWS = b"\x00" + b"\x10" * 4 + b"\x01" + b"\x02" * 4  # two rows of a 4 × 2 greyscale image


@pytest.mark.parametrize(
    "data",
    [
        _png(zlib.compress(ROWS)[:-4]),  # the zlib stream stops early (valid chunk CRCs)
        _png(zlib.compress(ROWS[:-1])),  # one byte short of the size the header says
        _png(zlib.compress(ROWS + b"\x00")),  # one byte more
        _png(zlib.compress(b"\x00" + b"\x10" * 4 + b"\x07" + b"\x02" * 4)),  # filter type 7
        _png(zlib.compress(ROWS)[:-1] + b"\x00"),  # a wrong Adler-32
    ],
    ids=["truncated-stream", "short", "long", "bad-filter", "bad-adler32"],
)
def test_png_image_data_is_checked_without_decoding(data: bytes) -> None:
    with pytest.raises(ImageError) as caught:
        validate_image(data, 1000)
    assert caught.value.code == "invalid_image"
    assert validate_image(_png(zlib.compress(ROWS)), 1000)
