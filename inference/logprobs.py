"""Log-probabilities of generated tokens, recorded inside ``transformers.generate``.

:class:`LogprobRecorder` sits in the logits-processor chain after the penalties, the
temperature and any guided-decoding mask (before ``top_p`` and the sampler) and keeps the
log-softmax of each step's scores; when the step's token is known, :meth:`take` turns it
into a :class:`~inference.contract.TokenLogprob`, pending until the text it belongs to is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from transformers.generation import LogitsProcessor

from inference.contract import TokenLogprob, TopLogprob

TokenBytes = Callable[[int], bytes]


class LogprobRecorder(LogitsProcessor):
    """Records each step's log-probabilities; returns the scores unchanged."""

    def __init__(self, top: int, token_bytes: TokenBytes) -> None:
        self.top = top
        self.token_bytes = token_bytes
        self._step: torch.Tensor | None = None
        self._pending: list[TokenLogprob] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._step = torch.log_softmax(scores[0].float(), dim=-1).cpu()
        return scores

    def take(self, token: int) -> None:
        """The token this step generated: record it with its top alternatives."""
        if self._step is None:
            return
        step, self._step = self._step, None
        top: list[TopLogprob] = []
        if self.top:
            values, ids = torch.topk(step, min(self.top, step.shape[0]))
            top = [
                TopLogprob(list(self.token_bytes(i)), v)
                for v, i in zip(values.tolist(), ids.tolist(), strict=True)
                if not math.isinf(v)  # a token the guide forbids is no alternative
            ]
        self._pending.append(TokenLogprob(list(self.token_bytes(token)), step[token].item(), top))

    def pending(self) -> list[TokenLogprob]:
        """The tokens recorded since the last call, for the delta about to be sent."""
        taken, self._pending = self._pending, []
        return taken
