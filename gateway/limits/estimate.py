"""The prompt estimate reserved at admission, before the request reaches the model.

Admission reserves this plus the completion's ceiling; the reservation is corrected to the
real counts when the response ends.
"""

from __future__ import annotations

import math

from gateway.settings import Settings
from inference.contract import PromptCost


def estimate_prompt(
    settings: Settings,
    cost: PromptCost | None,
    *,
    text_chars: int,
    messages: int,
    images: int,
    video_frames: int,
) -> int:
    """Prompt tokens: text at the model's own ratio, its template's overhead, and media.

    ``cost``: what the model measured of its tokenizer and template; None (a model that
    does not say, or one not yet described) falls back to the settings' ratios.
    """
    if cost is None:
        cost = PromptCost(
            chars_per_token=settings.chars_per_token_estimate,
            message_tokens=settings.message_tokens_estimate,
            base_tokens=0,
        )
    prompt = math.ceil(text_chars / cost.chars_per_token)
    prompt += messages * cost.message_tokens + cost.base_tokens
    prompt += images * settings.image_tokens_estimate
    prompt += video_frames * settings.video_frame_tokens_estimate
    return max(1, prompt)
