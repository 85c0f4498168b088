"""A request's clock: when each stage began, for Groq's usage timings and the usage record."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.api.chat_response import Usage
from inference import contract


@dataclass
class Timing:
    """When the request arrived, went to the model, got its first token, and finished.

    Seconds of ``time.perf_counter``; ``first`` stays None until the model answers anything.
    The first token is the first generated one, even when its text is not content (a tool
    call): the model reports it with an empty delta (:mod:`inference.contract`).
    """

    received: float
    submitted: float = 0.0
    first: float | None = None
    done: float = 0.0

    @classmethod
    def start(cls) -> Timing:
        """The clock of a request arriving now."""
        return cls(received=time.perf_counter())

    def mark_first(self) -> None:
        """The model's first delta, empty or not (or its Final, for one without), arrived now."""
        if self.first is None:
            self.first = time.perf_counter()

    def usage(self, final: contract.Final) -> Usage:
        """Token counts and timings, as Groq reports them."""
        first = self.submitted if self.first is None else self.first
        prompt_time = first - self.submitted
        completion_time = self.done - first
        return Usage(
            prompt_tokens=final.prompt_tokens,
            completion_tokens=final.completion_tokens,
            total_tokens=final.prompt_tokens + final.completion_tokens,
            queue_time=round(self.submitted - self.received, 6),
            prompt_time=round(prompt_time, 6),
            completion_time=round(completion_time, 6),
            total_time=round(prompt_time + completion_time, 6),
        )
