"""The token estimate reserved at admission: the prompt, images included, plus max_tokens."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.settings import Settings

# Per message: role and template tokens the chat template adds around it.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(
    settings: Settings,
    *,
    text_chars: int,
    messages: int,
    images: int,
    video_frames: int,
    max_tokens: int | None,
) -> int:
    """Tokens to reserve: an upper-leaning estimate, corrected to the real count at the end."""
    prompt = math.ceil(text_chars / settings.chars_per_token_estimate)
    prompt += messages * MESSAGE_OVERHEAD_TOKENS
    prompt += images * settings.image_tokens_estimate
    prompt += video_frames * settings.video_frame_tokens_estimate
    completion = max_tokens if max_tokens is not None else settings.max_tokens_estimate
    return max(1, prompt + completion)


def count_chat(messages: Iterable[Mapping[str, Any]]) -> tuple[int, int, int]:
    """Text characters, messages and images of OpenAI-shaped chat messages."""
    chars = count = images = 0
    for message in messages:
        count += 1
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    chars += len(part.get("text") or "")
                elif part.get("type") == "image_url":
                    images += 1
        for call in message.get("tool_calls") or ():
            chars += len(str(call.get("function", {}).get("arguments", "")))
    return chars, count, images
