"""What a prompt costs in tokens on a checkpoint, measured once at load for the gateway's estimates.

The gateway reserves tokens before a request reaches the model, from the request's text
size. A fixed ratio (OpenAI's "about 4 characters per token") is far off for many
tokenizers: a byte-level one counts one token per byte, and every chat template adds
tokens around each message. So the engine measures its own tokenizer and template on a
sample and reports :class:`~inference.contract.PromptCost` in its capabilities.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from inference.contract import PromptCost

log = logging.getLogger(__name__)

# Plain English prose with digits and punctuation: what most prompts are made of.
SAMPLE = (
    "Describe the picture in two sentences, then list every object you can see, with its "
    "colour and position (left, right, top or bottom). If there are 3 or more objects, say "
    "which one is the largest. Answer in plain text; do not use markdown."
)


def _tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def measure(processor: Any) -> PromptCost | None:
    """The prompt cost of ``processor``'s tokenizer and chat template, or None if unmeasurable.

    With ``one`` and ``three`` the token counts of a rendered chat of one and of three
    messages with the same text of ``text`` tokens: ``message_tokens`` is
    ``(three - one - 2·text) / 2`` and ``base_tokens`` is ``one - text - message_tokens``.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    turns = [
        {"role": "user", "content": SAMPLE},
        {"role": "assistant", "content": SAMPLE},
        {"role": "user", "content": SAMPLE},
    ]
    try:
        text = _tokens(tokenizer, SAMPLE)
        one, three = (
            _tokens(
                tokenizer,
                processor.apply_chat_template(
                    turns[:count], add_generation_prompt=True, tokenize=False
                ),
            )
            for count in (1, 3)
        )
    except Exception as exc:  # no chat template, or one that needs more than text
        log.warning("prompt cost not measured (%s): the gateway's defaults apply", exc)
        return None
    message = max(0, math.ceil((three - one - 2 * text) / 2))
    return PromptCost(
        chars_per_token=round(len(SAMPLE) / max(1, text), 3),
        message_tokens=message,
        base_tokens=max(0, one - text - message),
    )
