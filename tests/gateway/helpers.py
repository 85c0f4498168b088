"""Shared bits of the gateway tests: the model id, images, Triton's counters."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from tests.inference.vlm_client import metric

__all__ = ["MODEL", "image_data_uri", "image_message", "metric"]

MODEL = "visiongate/tiny-random-llava"


def image_data_uri(seed: int = 0, size: tuple[int, int] = (48, 40)) -> str:
    """A random PNG as a ``data:image/png;base64,`` URI."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_message(text: str = "What's in this image?", seed: int = 0) -> dict[str, object]:
    """A user message with text and a base64 image, as Groq's vision guide writes it."""
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": image_data_uri(seed)}},
        ],
    }
