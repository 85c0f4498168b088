"""Video decoding with PyAV: frames sampled at ``fps`` (at most ``max_frames``) as JPEG images.

The frames are spread evenly over the whole video: ``min(max_frames, duration × fps)`` of
them. Only what the sample points need is decoded: packets are read (cheap) and the ones
before a sample point are decoded only from the last keyframe before it, so a long video
with a keyframe every few seconds costs a few groups of pictures, not every frame. A
keyframe far behind a sample point (one keyframe, then only P-frames) cannot be skipped:
``max_decoded_frames`` and ``timeout_s`` bound that work.

Blocking CPU work on one thread (FFmpeg's own threads are off: the media workers are the
bound on CPU); intake runs it on a media worker, which sets ``cancelled`` when nobody
waits any more.
"""

from __future__ import annotations

import io
import math
import threading
import time
from dataclasses import dataclass

import av
from av.video.frame import VideoFrame

from gateway.media.images import ImageError, check_pixels
from gateway.media.workers import check

# Container demuxers only. Playlist formats (HLS, concat, ...) would make FFmpeg open the
# URLs or files they list, behind the gateway's SSRF and local-root checks.
DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,ogg"


@dataclass(frozen=True)
class Sampling:
    """How a video becomes frames, and the caps that bound the work."""

    fps: float
    max_frames: int
    max_duration_s: float
    max_pixels: int
    jpeg_quality: int
    max_decoded_frames: int
    timeout_s: float


def _invalid(detail: str) -> ImageError:
    return ImageError(f"The video cannot be decoded ({detail}).", "invalid_video")


def _too_long(seconds: float, cap: float) -> ImageError:
    return ImageError(
        f"The video is {seconds:.1f} s long; at most {cap:g} s are accepted.", "video_too_long"
    )


def _targets(duration: float | None, sampling: Sampling) -> list[float]:
    """The timestamps (s) to take frames at."""
    if duration is None or duration <= 0:
        return [k / sampling.fps for k in range(sampling.max_frames)]
    wanted = duration * sampling.fps  # inf for a huge fps: compared, never rounded
    count = max(1, math.ceil(wanted)) if wanted < sampling.max_frames else sampling.max_frames
    return [k * duration / count for k in range(count)]


class _Sampler:
    """Feeds the decoder only the packets the sample points need, and keeps their frames."""

    def __init__(
        self,
        stream: av.VideoStream,
        sampling: Sampling,
        targets: list[float],
        cancelled: threading.Event,
    ) -> None:
        self.codec = stream.codec_context
        self.codec.thread_count = 1
        self.sampling = sampling
        self.cancelled = cancelled
        self.deadline = time.monotonic() + sampling.timeout_s
        self.targets = targets
        self.frames: list[bytes] = []
        self.decoded = 0
        # Timestamps count from the stream's start: some containers start well after 0.
        start = stream.start_time
        self.origin = (
            float(start * stream.time_base) if start is not None and stream.time_base else None
        )

    @property
    def done(self) -> bool:
        """Every sample point has its frame."""
        return len(self.frames) == len(self.targets)

    def time(self, seconds: float | None) -> float | None:
        """``seconds`` from the start of the stream (the first timestamp seen, if unknown)."""
        if seconds is None:
            return None
        if self.origin is None:
            self.origin = seconds
        return seconds - self.origin

    def check(self) -> None:
        check(self.cancelled)
        if time.monotonic() > self.deadline:
            raise ImageError(
                f"Decoding the video took more than {self.sampling.timeout_s:g} s; it is too "
                "costly to sample.",
                "video_decode_timeout",
            )

    def decode(self, packet: av.Packet | None) -> None:
        """Decode ``packet`` (None: flush) and keep the frames that reach the next point."""
        if packet is not None:
            self.decoded += 1
            if self.decoded > self.sampling.max_decoded_frames:
                raise ImageError(
                    f"Sampling the video needs more than {self.sampling.max_decoded_frames} "
                    "decoded frames (its keyframes are too far apart); it is too costly to "
                    "sample.",
                    "video_too_complex",
                )
        for frame in self.codec.decode(packet):
            assert isinstance(frame, VideoFrame)
            at = self.time(frame.time)
            if self.done or (at or 0.0) < self.targets[len(self.frames)]:
                continue
            check_pixels(frame.width, frame.height, self.sampling.max_pixels)
            buffer = io.BytesIO()
            frame.to_image().save(buffer, "JPEG", quality=self.sampling.jpeg_quality)
            self.frames.append(buffer.getvalue())

    def sample(self, container: av.container.InputContainer, stream: av.VideoStream) -> None:
        """Read every packet; decode from the last keyframe before each sample point on."""
        pending: list[av.Packet] = []  # read since the last packet decoded, not decoded yet
        reached: float | None = -math.inf  # the latest timestamp decoded (None: unknown)
        for packet in container.demux(stream):
            self.check()
            if packet.size == 0:  # the end of the stream
                break
            stamp = packet.pts if packet.pts is not None else packet.dts
            at = None if stamp is None else self.time(float(stamp * packet.time_base))
            if at is not None and at > self.sampling.max_duration_s:
                raise _too_long(at, self.sampling.max_duration_s)
            target = self.targets[len(self.frames)]
            decoding = reached is None or reached >= target  # the next frame kept is coming
            if packet.is_keyframe and not decoding:
                # Nothing read since the last packet decoded is needed: start afresh here.
                pending.clear()
                self.codec.flush_buffers()
            pending.append(packet)
            if not decoding and at is not None and at < target:
                continue
            for one in pending:
                self.check()
                self.decode(one)
            pending.clear()
            if self.done:
                return
            reached = None if at is None or reached is None else max(reached, at)
        for one in pending:
            self.check()
            self.decode(one)
        self.decode(None)


def sample_frames(
    data: bytes, sampling: Sampling, cancelled: threading.Event | None = None
) -> list[bytes]:
    """JPEG frames of the first video stream in ``data``, sampled as ``sampling`` says.

    ``cancelled``, once set, stops the work at the next packet (:class:`Cancelled`).
    """
    try:
        container = av.open(io.BytesIO(data), "r", options={"format_whitelist": DEMUXERS})
    except (av.FFmpegError, ValueError) as exc:
        raise _invalid(str(exc)) from None
    with container:
        if not container.streams.video:
            raise _invalid("it has no video stream")
        stream = container.streams.video[0]
        check_pixels(stream.codec_context.width, stream.codec_context.height, sampling.max_pixels)
        duration = container.duration / av.time_base if container.duration else None
        if duration is not None and duration > sampling.max_duration_s:
            raise _too_long(duration, sampling.max_duration_s)
        targets = _targets(duration, sampling)
        sampler = _Sampler(stream, sampling, targets, cancelled or threading.Event())
        try:
            sampler.sample(container, stream)
        except av.FFmpegError as exc:
            raise _invalid(str(exc)) from None
    if not sampler.frames:
        raise _invalid("no frame could be decoded")
    return sampler.frames
