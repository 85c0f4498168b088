"""Image and video validation and local-file roots, driven directly."""

from __future__ import annotations

import io
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from gateway.media.data_uri import DataURIError, decode_data_uri
from gateway.media.images import ImageError, validate_image
from gateway.media.local import LocalMediaError, read_local
from gateway.media.video import Sampling, sample_frames
from tests.support.media import animated_gif, encode, photo, png_bomb, video

CAP = 33_177_600
SAMPLING = Sampling(
    fps=2.0,
    max_frames=32,
    max_duration_s=600.0,
    max_pixels=CAP,
    jpeg_quality=90,
    max_decoded_frames=10_000,
    timeout_s=15.0,
)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_accepted_formats_are_forwarded_unchanged(fmt: str) -> None:
    data = encode(photo(96, 64), fmt)
    assert validate_image(data, CAP) == data


def test_gif_becomes_its_first_frame_as_png() -> None:
    forwarded = validate_image(animated_gif(), CAP)
    with Image.open(io.BytesIO(forwarded)) as image:
        assert image.format == "PNG"
        assert getattr(image, "n_frames", 1) == 1
        assert image.convert("RGB").getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize(
    "data",
    [
        encode(photo(32, 32), "TIFF"),
        encode(photo(32, 32), "PNG")[:200],
        encode(photo(64, 64), "JPEG")[:-600],
        b"GIF89a" + b"\x00" * 10,
        b"hello, world",
    ],
    ids=["tiff", "truncated-png", "truncated-jpeg", "corrupt-gif", "text"],
)
def test_other_formats_and_broken_data_are_invalid(data: bytes) -> None:
    with pytest.raises(ImageError) as caught:
        validate_image(data, CAP)
    assert caught.value.code == "invalid_image"


def test_pixel_cap_at_the_limit_passes_and_one_more_fails() -> None:
    assert validate_image(png_bomb(1, 1000), 1000)
    with pytest.raises(ImageError) as caught:
        validate_image(png_bomb(1, 1001), 1000)
    assert caught.value.code == "image_resolution_too_large"


def test_a_40_megapixel_bomb_of_a_few_kilobytes_is_refused_before_decoding() -> None:
    bomb = png_bomb(1, 40_000_000, corrupt_pixels=True)
    assert len(bomb) < 4096
    started = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        validate_image(bomb, CAP)
    # Its pixel data is garbage: decoding would have failed as invalid_image instead.
    assert caught.value.code == "image_resolution_too_large"
    assert time.perf_counter() - started < 0.5
    # Far beyond the cap, Pillow's own guard answers first, the same way.
    with pytest.raises(ImageError) as caught:
        validate_image(png_bomb(100_000, 100_000, corrupt_pixels=True), CAP)
    assert caught.value.code == "image_resolution_too_large"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("data:image/png,iVBORw0KGgo=", "base64"),
        ("data:text/plain;base64,aGVsbG8=", "data:image"),
        ("data:;base64,aGVsbG8=", "data:image"),
        ("data:image/png;base64", "comma"),
        ("data:image/png;base64,!!!", "invalid"),
    ],
)
def test_data_uri_headers(uri: str, message: str) -> None:
    with pytest.raises(DataURIError, match=message):
        decode_data_uri(uri, "image")


def test_video_frames_are_sampled_at_fps_up_to_max_frames() -> None:
    clip = video(seconds=3.0, rate=10)
    frames = sample_frames(clip, SAMPLING)
    assert len(frames) == 6  # 3 s at 2 fps
    with Image.open(io.BytesIO(frames[0])) as first:
        assert first.format == "JPEG" and first.size == (64, 48)
    capped = replace(SAMPLING, fps=10.0, max_frames=4)
    assert len(sample_frames(clip, capped)) == 4
    assert len(sample_frames(video(fmt="webm"), SAMPLING)) == 6


def test_video_caps() -> None:
    clip = video(seconds=3.0, rate=10)
    short = replace(SAMPLING, max_duration_s=2.0)
    with pytest.raises(ImageError) as caught:
        sample_frames(clip, short)
    assert caught.value.code == "video_too_long"
    small = replace(SAMPLING, max_pixels=64 * 48 - 1)
    with pytest.raises(ImageError) as caught:
        sample_frames(clip, small)
    assert caught.value.code == "image_resolution_too_large"
    assert sample_frames(clip, replace(SAMPLING, max_pixels=64 * 48))
    for broken in (clip[: len(clip) // 2], b"\x00" * 1000, encode(photo(16, 16), "PNG")):
        with pytest.raises(ImageError) as caught:
            sample_frames(broken, SAMPLING)
        assert caught.value.code == "invalid_video"


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    inside = tmp_path / "media"
    outside = tmp_path / "private"
    inside.mkdir()
    outside.mkdir()
    (inside / "a.png").write_bytes(b"x" * 100)
    (outside / "secret.png").write_bytes(b"s" * 10)
    (inside / "link.png").symlink_to(outside / "secret.png")
    (inside / "inner.png").symlink_to(inside / "a.png")
    return inside, outside


def test_local_files_under_a_root(roots: tuple[Path, Path]) -> None:
    inside, _outside = roots
    assert read_local(f"file://{inside}/a.png", [inside], 100) == b"x" * 100
    assert read_local(f"{inside}/a.png", [inside], 100) == b"x" * 100  # a bare absolute path
    assert read_local(f"file://{inside}/inner.png", [inside], 100) == b"x" * 100
    assert read_local(f"file://{inside}/a%2Epng", [inside], 100) == b"x" * 100


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("{outside}/secret.png", "local_media_forbidden"),
        ("{inside}/../private/secret.png", "local_media_forbidden"),
        ("{inside}/%2E%2E/private/secret.png", "local_media_forbidden"),
        ("{inside}/link.png", "local_media_forbidden"),
        ("{inside}/missing.png", "local_media_not_found"),
        ("{outside}/missing.png", "local_media_forbidden"),
        ("{inside}", "local_media_forbidden"),
    ],
)
def test_local_files_outside_roots_are_refused(
    roots: tuple[Path, Path], name: str, code: str
) -> None:
    inside, outside = roots
    url = "file://" + name.format(inside=inside, outside=outside)
    with pytest.raises(LocalMediaError) as caught:
        read_local(url, [inside], 1000)
    assert caught.value.code == code


def test_local_size_cap_and_no_roots(roots: tuple[Path, Path]) -> None:
    inside, _ = roots
    with pytest.raises(LocalMediaError) as caught:
        read_local(f"file://{inside}/a.png", [inside], 99)
    assert caught.value.code == "media_too_large"
    with pytest.raises(LocalMediaError) as caught:
        read_local(f"file://{inside}/a.png", [], 1000)
    assert caught.value.code == "local_media_forbidden"
    with pytest.raises(LocalMediaError) as caught:
        read_local(f"file://otherhost{inside}/a.png", [inside], 1000)
    assert caught.value.code == "invalid_media_url"
    fifo = inside / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(LocalMediaError) as caught:
        read_local(f"file://{fifo}", [inside], 1000)
    assert caught.value.code == "local_media_forbidden"
