"""Turn the encoded images and video frames of the contract's tensors into PIL images."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from inference.engines.base import Media, RequestError


def _decode(data: bytes, what: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)  # the first frame of an animation
            return image.convert("RGB")
    except UnidentifiedImageError as exc:
        raise RequestError(f"{what}: not an image in a format the model accepts") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RequestError(f"{what}: the image data is corrupt or truncated ({exc})") from exc


def decode_media(images: list[bytes], frames: list[bytes], frame_counts: list[int]) -> Media:
    """Decode every image and frame; a bad one raises RequestError naming its tensor and index."""
    if any(count < 0 for count in frame_counts) or sum(frame_counts) != len(frames):
        raise RequestError(
            f"video_frame_counts sums to {sum(frame_counts)}, video_frames holds {len(frames)}"
        )
    media = Media(images=[_decode(data, f"images[{i}]") for i, data in enumerate(images)])
    start = 0
    for count in frame_counts:
        media.videos.append(
            [_decode(frames[i], f"video_frames[{i}]") for i in range(start, start + count)]
        )
        start += count
    return media
