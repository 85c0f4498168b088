"""Wire formats that do not need a limiter: durations, estimates."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.limits import count_chat, estimate_tokens, format_duration
from gateway.settings import Settings


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.004, "10ms"),
        (0.5, "500ms"),
        (1, "1s"),
        (7.66, "7.66s"),
        (7.661, "7.67s"),
        (60, "1m0s"),
        (179.56, "2m59.56s"),
        (3600, "1h0m0s"),
        (86_399.99, "23h59m59.99s"),
    ],
)
def test_durations_are_written_as_groq_does(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_estimate_counts_text_images_and_max_tokens() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "x" * 40},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "y" * 80},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
            ],
        },
    ]
    chars, count, images = count_chat(messages)
    assert (chars, count, images) == (120, 2, 2)
    settings = Settings()
    tokens = estimate_tokens(
        settings, text_chars=chars, messages=count, images=images, video_frames=3, max_tokens=100
    )
    assert tokens == 30 + 2 * 4 + 5 * settings.image_tokens_estimate + 100
    without_max = estimate_tokens(
        settings, text_chars=0, messages=1, images=0, video_frames=0, max_tokens=None
    )
    assert without_max == 4 + settings.max_tokens_estimate
