"""What every engine offers the Triton model, and the error a bad request raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PIL.Image import Image

    from inference.contract import Capabilities, Final, GenerateRequest, TokenLogprob


class RequestError(ValueError):
    """The request itself is wrong; its message goes back to the client as it is.

    ``param`` names the OpenAI parameter at fault and ``code`` says why, when known.
    """

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass
class Media:
    """Decoded media of one request: images by index, and each video as a list of frames."""

    images: list[Image] = field(default_factory=list)
    videos: list[list[Image]] = field(default_factory=list)


@dataclass
class Hooks:
    """How an engine talks back while it generates."""

    emit: Callable[[str], None]
    """Called with each new piece of text, never with an empty string."""
    cancelled: Callable[[], bool]
    """Polled once per token; generation stops as soon as it returns True."""
    on_token: Callable[[], None] = lambda: None
    """Called once per generated token, before its text; the first one is reported (contract)."""
    prefilled: Callable[[int], None] = lambda prompt_tokens: None
    """Called once with the prompt's token count, after every check, before generating."""
    logprobs: Callable[[list[TokenLogprob]], None] = lambda tokens: None
    """With ``logprobs`` asked for: called just before ``emit`` with the tokens of that text."""


class Engine(Protocol):
    """A loaded checkpoint that turns a chat into streamed text."""

    capabilities: Capabilities

    def generate(self, request: GenerateRequest, media: Media, hooks: Hooks) -> Final:
        """Stream an answer through ``hooks``; return what the final response reports."""
        ...
