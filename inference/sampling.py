"""Logits processors that give OpenAI's sampling semantics inside ``transformers.generate``.

Sampling happens in :class:`SeededSampler` with a per-request numpy ``Generator``, and
``generate`` then runs greedy over its one-hot answer. So the same seed gives the same
text even while other requests generate concurrently in other threads, which seeding the
global RNG could not promise. numpy's generator, not torch's: ``torch.Generator`` keeps
only the low 32 bits of a seed, and every bit of OpenAI's 64-bit ``seed`` must count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from transformers.generation import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

# A temperature below this is greedy: logits divided by it overflow float32 (NaN
# probabilities), and the distribution is one-hot to float32 precision well before.
GREEDY_BELOW = 1e-6


class OpenAIPenalties(LogitsProcessor):
    """Presence and frequency penalties over the tokens generated so far (not the prompt)."""

    def __init__(self, prompt_length: int, presence: float, frequency: float) -> None:
        self.prompt_length = prompt_length
        self.presence = presence
        self.frequency = frequency

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype)
        )
        penalty = self.frequency * counts + self.presence * (counts > 0).to(scores.dtype)
        return cast(torch.FloatTensor, scores - penalty)


class SeededSampler(LogitsProcessor):
    """Draw the next token from the processed distribution and make it the only choice."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float(), dim=-1).cpu().double().numpy()
        cumulative = np.cumsum(probs, axis=-1)
        # Inverse CDF: the first token whose cumulative probability reaches a draw in (0, total];
        # a token of probability 0 (masked) is never the first to reach it.
        drawn = [
            int(np.searchsorted(row, (1.0 - self.rng.random()) * row[-1])) for row in cumulative
        ]
        chosen = torch.tensor(drawn, device=scores.device).unsqueeze(1)
        only = torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)
        return cast(torch.FloatTensor, only)


def seeded_rng(seed: int | None) -> np.random.Generator:
    """A generator for ``seed`` (an int64, taken modulo 2**64); fresh entropy without one."""
    return np.random.default_rng(None if seed is None else seed % 2**64)


def build_processors(
    *,
    prompt_length: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    presence_penalty: float,
    frequency_penalty: float,
    extra: Sequence[LogitsProcessor] = (),
    record: LogitsProcessor | None = None,
) -> LogitsProcessorList:
    """The processor chain for one request; temperature 0 (or below GREEDY_BELOW) is greedy.

    ``record`` (a logprob recorder) sees the scores after the penalties, ``extra`` and the
    temperature, before ``top_p``.
    """
    chain = LogitsProcessorList()
    if presence_penalty or frequency_penalty:
        chain.append(OpenAIPenalties(prompt_length, presence_penalty, frequency_penalty))
    chain.extend(extra)
    sampled = temperature >= GREEDY_BELOW
    if sampled and temperature != 1.0:
        chain.append(TemperatureLogitsWarper(temperature))
    if record is not None:
        chain.append(record)
    if sampled:
        if top_p < 1.0:
            chain.append(TopPLogitsWarper(top_p))
        chain.append(SeededSampler(seeded_rng(seed)))
    return chain
