"""Pictures and videos of the default model's synthetic world, to ask it what it sees."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image

from inference.scenes import Scene, Scenes
from tests.support.media import data_uri, encode


def scene(
    colour: str, shape: str = "circle", position: str = "center", count: int = 1, seed: int = 0
) -> Scene:
    """One scene with these attributes (the rest drawn from ``seed``)."""
    return Scenes(seed).scene(count=count, colour=colour, shape=shape, position=position)


def picture(scene_: Scene, size: int = 128, fmt: str = "PNG") -> bytes:
    """A scene encoded as ``fmt``."""
    return encode(scene_.draw(size), fmt)


def picture_uri(scene_: Scene, size: int = 128) -> str:
    """A scene as a PNG ``data:`` URI."""
    return data_uri(picture(scene_, size), "image/png")


def colour_video(colours: list[str], seconds_each: float = 1.0, rate: int = 10) -> bytes:
    """An H.264 MP4 of one shape changing colour, each colour held ``seconds_each``."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = stream.height = 96
        stream.pix_fmt = "yuv420p"
        for i, colour in enumerate(colours):
            frame_image: Image.Image = scene(colour, "square", seed=i).draw(96)
            frame = av.VideoFrame.from_ndarray(np.asarray(frame_image), format="rgb24")
            for _ in range(round(seconds_each * rate)):
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
