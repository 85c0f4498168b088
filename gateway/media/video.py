"""Video decoding with PyAV: frames sampled at ``fps`` (at most ``max_frames``) as JPEG images.

The frames are spread evenly over the whole video: ``min(max_frames, duration × fps)`` of
them. Blocking CPU work; intake runs it in a worker thread.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import av

from gateway.media.images import ImageError, check_pixels

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
    count = max(1, min(sampling.max_frames, math.ceil(duration * sampling.fps)))
    return [k * duration / count for k in range(count)]


def sample_frames(data: bytes, sampling: Sampling) -> list[bytes]:
    """JPEG frames of the first video stream in ``data``, sampled as ``sampling`` says."""
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
        stream.thread_type = "AUTO"
        targets = _targets(duration, sampling)
        frames: list[bytes] = []
        start: float | None = None
        try:
            for frame in container.decode(stream):
                # Timestamps count from the first frame: some containers start well after 0.
                start = frame.time or 0.0 if start is None else start
                time = (frame.time or 0.0) - start
                if time > sampling.max_duration_s:
                    raise _too_long(time, sampling.max_duration_s)
                if time < targets[len(frames)]:
                    continue
                check_pixels(frame.width, frame.height, sampling.max_pixels)
                buffer = io.BytesIO()
                frame.to_image().save(buffer, "JPEG", quality=sampling.jpeg_quality)
                frames.append(buffer.getvalue())
                if len(frames) == len(targets):
                    break
        except av.FFmpegError as exc:
            raise _invalid(str(exc)) from None
    if not frames:
        raise _invalid("no frame could be decoded")
    return frames
