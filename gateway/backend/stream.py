"""What both Triton transports share: the model's stream of responses and what it means.

A transport (gRPC in :mod:`gateway.backend.triton`, HTTP in :mod:`gateway.backend.triton_http`)
sends one request and reads the model's responses as :class:`ModelResponse`, ending where
Triton ends the request; :class:`TritonStreams` turns them into the contract's events (a
Prefill, text deltas, one Final) and maps the model's errors to the API's.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

import msgspec

from gateway.errors import (
    ApiError,
    BackendTimeout,
    BackendUnavailable,
    InternalError,
    InvalidRequest,
)
from gateway.settings import Settings
from inference import contract

log = logging.getLogger("visiongate.backend")

# Messages of errors Triton itself raises when a model cannot take requests, as opposed to
# a model's own RequestError (the request's fault) or its internal error.
_UNAVAILABLE_MARKERS = ("unknown model", "is not found", "not ready", "has no available version")
_MODEL_INTERNAL = "internal error in the vlm model"


class ModelResponse(msgspec.Struct):
    """One response of the model's stream: the contract's outputs it carries, by name.

    Over HTTP, Triton writes each response as a JSON object with these names (and ``error``
    for a failed request); over gRPC the transport fills it from the output tensors.
    """

    text_delta: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: str | None = None
    capabilities: str | None = None
    logprobs: str | None = None
    error: str | None = None


Event = contract.Prefill | contract.DeltaLogprobs | str | contract.Final


class TritonStreams(abc.ABC):
    """A Triton server reached by one transport: describe, generate, and the errors' meaning.

    Subclasses connect, check readiness and implement :meth:`responses`: send one request,
    yield its responses, end where Triton ends the request (raising :meth:`unavailable` if
    the stream broke first), and cancel the request when closed early.
    """

    def __init__(self, settings: Settings, url: str) -> None:
        self.url = url
        self.settings = settings

    @abc.abstractmethod
    async def open(self) -> None:
        """Prepare to connect; call inside the worker's event loop."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection."""

    @abc.abstractmethod
    async def ready(self, triton_model: str) -> bool:
        """True when Triton answers and ``triton_model`` is ready."""

    @property
    @abc.abstractmethod
    def idle_streams(self) -> int:
        """Connections or streams whose last request has ended, kept for the next ones."""

    @abc.abstractmethod
    def responses(
        self,
        triton_model: str,
        raw: bytes,
        images: Sequence[bytes] = (),
        video_frames: Sequence[bytes] = (),
        frame_counts: Sequence[int] = (),
    ) -> AsyncGenerator[ModelResponse, None]:
        """The model's responses to one request (``raw``: the encoded contract request)."""

    def unavailable(self, why: str) -> BackendUnavailable:
        """A 503 telling the client when to retry."""
        return BackendUnavailable(
            f"The model backend is unavailable ({why}). Please retry shortly.",
            retry_after_s=self.settings.retry_after_s,
        )

    @staticmethod
    def timeout() -> BackendTimeout:
        """The request ran past ``triton_request_timeout_s``."""
        return BackendTimeout("The model did not finish within the request timeout.")

    def model_error(self, message: str) -> ApiError:
        """What an error the model (or Triton, for the model) ended a request with means."""
        refusal = contract.decode_refusal(message)
        if refusal is not None:
            return InvalidRequest(refusal.message, param=refusal.param, code=refusal.code)
        lowered = message.lower()
        if _MODEL_INTERNAL in lowered:
            log.error("model error: %s", message)
            return InternalError("The model failed while processing your request.")
        if any(marker in lowered for marker in _UNAVAILABLE_MARKERS):
            return self.unavailable("the model is not ready")
        return InvalidRequest(message)

    async def describe(self, triton_model: str) -> contract.Capabilities:
        """What the model says it can do."""
        raw = contract.encode_request(contract.DescribeRequest())
        capabilities = None
        async with aclosing(self.responses(triton_model, raw)) as responses:
            async for response in responses:
                capabilities = response.capabilities or capabilities
        if capabilities is None:
            raise InternalError(f"model {triton_model} did not describe itself")
        return contract.decode_capabilities(capabilities.encode())

    async def generate(
        self,
        triton_model: str,
        request: contract.GenerateRequest,
        images: Sequence[bytes] = (),
        video_frames: Sequence[bytes] = (),
        frame_counts: Sequence[int] = (),
    ) -> AsyncGenerator[Event, None]:
        """Stream the answer: a Prefill, text deltas (one empty: the first token), one Final.

        With ``logprobs`` asked for, a delta's DeltaLogprobs comes just before it. The
        response with the finish reason may not be the one that ends the stream (over gRPC,
        Triton's last response can carry no outputs), so it is kept until the end.

        Closing it early cancels the request. A model that does not report its prefill
        sends no Prefill.
        """
        raw = contract.encode_request(request)
        stream = self.responses(triton_model, raw, images, video_frames, frame_counts)
        finish: ModelResponse | None = None
        # aclosing: when our consumer leaves, the stream closes now (and cancels the
        # request), not whenever the garbage collector finalizes it.
        async with aclosing(stream) as responses:
            async for response in responses:
                if response.logprobs is not None:
                    yield contract.decode_logprobs(response.logprobs.encode())
                if response.finish_reason is not None:
                    finish = response
                    if response.text_delta:
                        yield response.text_delta
                elif response.prompt_tokens is not None:
                    yield contract.Prefill(response.prompt_tokens)
                elif response.text_delta is not None:
                    # "" is the first token: its text may come later or never.
                    yield response.text_delta
        if finish is None:
            raise InternalError(f"model {triton_model} ended a stream without a finish reason")
        yield contract.Final(
            finish_reason=finish.finish_reason,  # type: ignore[arg-type]
            prompt_tokens=finish.prompt_tokens or 0,
            completion_tokens=finish.completion_tokens or 0,
            tool_calls=msgspec.json.decode(finish.tool_calls or "[]"),
        )
