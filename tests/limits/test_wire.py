"""Wire formats that do not need a limiter: durations, estimates."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.api.chat_request import ChatCompletionRequest
from gateway.api.plan import plan_chat
from gateway.api.rate_limits import format_duration
from gateway.limits import estimate_prompt
from gateway.settings import Settings
from inference.contract import PromptCost


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


def test_the_prompt_estimate_counts_text_messages_and_media() -> None:
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
    chat = msgspec.convert({"model": "m", "messages": messages}, ChatCompletionRequest)
    plan = plan_chat(chat, Settings())
    chars, count, images = plan.text_chars, plan.message_count, plan.images
    assert (chars, count, images) == (120, 2, 2)
    settings = Settings()
    media = 2 * settings.image_tokens_estimate + 3 * settings.video_frame_tokens_estimate
    # A model that measured its tokenizer: 3 characters a token, 5 per message, 7 once.
    cost = PromptCost(chars_per_token=3.0, message_tokens=5, base_tokens=7)
    counts = {"text_chars": chars, "messages": count, "images": images, "video_frames": 3}
    assert estimate_prompt(settings, cost, **counts) == 40 + 2 * 5 + 7 + media
    # One that did not: the settings' ratios (4 characters a token, 4 per message).
    assert estimate_prompt(settings, None, **counts) == 30 + 2 * 4 + media
