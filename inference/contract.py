"""The contract between the gateway and the Triton model ``vlm``: the only module both sides import.

One decoupled (streaming) Triton model takes one JSON ``request`` tensor plus the media
the gateway has already fetched and validated, and streams back text deltas. The last
response of a stream carries the finish reason and the token counts.

Inputs
    ``request``             BYTES [1]   JSON, :class:`GenerateRequest` (or :class:`DescribeRequest`)
    ``images``              BYTES [-1]  encoded images (JPEG, PNG, ...) in the order their
                                        ``{"type": "image", "index": i}`` parts refer to them
    ``video_frames``        BYTES [-1]  encoded frames of every video, one video after another
    ``video_frame_counts``  INT32 [-1]  frames per video; video ``j`` is a slice of ``video_frames``

Outputs, streamed
    ``prompt_tokens``       INT32 [1]   alone on the first response, sent once the prompt is
                                        tokenised and accepted, before generation starts (the
                                        prefill is then the model's work, whoever leaves)
    ``text_delta``          BYTES [1]   UTF-8 text generated since the previous response
    ``logprobs``            BYTES [1]   with a ``text_delta`` when the request asks for
                                        ``logprobs``: JSON list of :class:`TokenLogprob`, the
                                        tokens generated since the previous delta that carried
                                        them (a token that is part of a UTF-8 character travels
                                        with the delta that completes the character)
    on the final response also:
    ``finish_reason``       BYTES [1]   ``stop``, ``length`` or ``tool_calls``
    ``prompt_tokens``       INT32 [1]
    ``completion_tokens``   INT32 [1]
    ``tool_calls``          BYTES [1]   JSON list of ``{"name", "arguments"}`` (``[]`` when none)
    ``capabilities``        BYTES [1]   JSON :class:`Capabilities`, answering a describe request

Right after the first generated token the model sends one response whose ``text_delta``
is empty (and nothing else): the first token exists even when its text is held back (a
possible stop string) or diverted (a tool call, sent only on the final response), so
time to first token means the first generated token either way.

A stream ends with a response whose ``triton_final_response`` parameter is true. That
response may carry no outputs at all (the aio client cannot opt out of empty final
responses), so the client keeps the last non-empty outputs it saw.

A request the model refuses (the request's fault) ends with a Triton error whose message
is JSON, :class:`Refusal`: what is wrong, and the OpenAI parameter at fault when known.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

MODEL_NAME = "vlm"

INPUT_REQUEST = "request"
INPUT_IMAGES = "images"
INPUT_VIDEO_FRAMES = "video_frames"
INPUT_VIDEO_FRAME_COUNTS = "video_frame_counts"

OUTPUT_TEXT_DELTA = "text_delta"
OUTPUT_FINISH_REASON = "finish_reason"
OUTPUT_PROMPT_TOKENS = "prompt_tokens"
OUTPUT_COMPLETION_TOKENS = "completion_tokens"
OUTPUT_TOOL_CALLS = "tool_calls"
OUTPUT_CAPABILITIES = "capabilities"
OUTPUT_LOGPROBS = "logprobs"

# Triton datatype names, as tritonclient and config.pbtxt spell them.
DTYPES: dict[str, str] = {
    INPUT_REQUEST: "BYTES",
    INPUT_IMAGES: "BYTES",
    INPUT_VIDEO_FRAMES: "BYTES",
    INPUT_VIDEO_FRAME_COUNTS: "INT32",
    OUTPUT_TEXT_DELTA: "BYTES",
    OUTPUT_FINISH_REASON: "BYTES",
    OUTPUT_PROMPT_TOKENS: "INT32",
    OUTPUT_COMPLETION_TOKENS: "INT32",
    OUTPUT_TOOL_CALLS: "BYTES",
    OUTPUT_CAPABILITIES: "BYTES",
    OUTPUT_LOGPROBS: "BYTES",
}

FINAL_RESPONSE_PARAMETER = "triton_final_response"
# A request parameter: how the elements of ``images`` and ``video_frames`` are encoded.
# Absent: the bytes themselves (gRPC). Over Triton's HTTP generate endpoint a tensor's
# element is a JSON string, so the gateway sends them base64-encoded and says so.
MEDIA_ENCODING_PARAMETER = "media_encoding"
MEDIA_BASE64 = "base64"

FinishReason = Literal["stop", "length", "tool_calls"]


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    """Text inside a message."""

    text: str


class ImagePart(msgspec.Struct, tag="image", tag_field="type"):
    """An image, by its position in the ``images`` tensor."""

    index: int


class VideoPart(msgspec.Struct, tag="video", tag_field="type"):
    """A video, by its position in ``video_frame_counts``."""

    index: int


Part = TextPart | ImagePart | VideoPart


class ToolCallFunction(msgspec.Struct):
    """The function half of an assistant tool call in the history."""

    name: str
    arguments: str


class ToolCall(msgspec.Struct):
    """An assistant tool call in the history, OpenAI shape."""

    id: str
    function: ToolCallFunction
    type: str = "function"


class Message(msgspec.Struct, omit_defaults=True):
    """One chat message, OpenAI shape, with media replaced by indexed parts."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class Guide(msgspec.Struct, omit_defaults=True):
    """Constrained decoding: ``json`` (any object), ``json_schema``, or ``tool_call``.

    ``tool_call`` forces one call (several when ``parallel_tool_calls``) of one of
    ``tool_names`` (default: every tool), with arguments valid for that tool's schema.
    """

    type: Literal["json", "json_schema", "tool_call"]
    json_schema: dict[str, Any] | None = None
    tool_names: list[str] | None = None


class GenerateRequest(
    msgspec.Struct, tag="generate", tag_field="op", omit_defaults=True, forbid_unknown_fields=True
):
    """What the gateway asks the model to do."""

    messages: list[Message]
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = []
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    tools: list[dict[str, Any]] | None = None
    # "none": the tools are left out of the prompt and the output is never read as calls.
    tool_choice: Literal["none", "auto", "required"] | None = None
    parallel_tool_calls: bool = True
    guide: Guide | None = None
    # Log-probabilities of the generated tokens, with this many top alternatives (0-20) each;
    # None: none are computed.
    logprobs: int | None = None


class DescribeRequest(msgspec.Struct, tag="describe", tag_field="op", forbid_unknown_fields=True):
    """Ask the model what it can do; answered by one response carrying ``capabilities``."""


VideoMode = Literal["native", "frames_as_images", "none"]


class PromptCost(msgspec.Struct):
    """How the checkpoint's tokenizer and chat template count a prompt, for estimates.

    ``chars_per_token``: characters of plain text per token, measured on a sample;
    ``message_tokens``: what the template adds around each message; ``base_tokens``: what it
    adds once (the generation prompt).
    """

    chars_per_token: float
    message_tokens: int
    base_tokens: int


class Capabilities(msgspec.Struct):
    """What the loaded engine and checkpoint support."""

    model: str
    engine: str
    vision: bool
    video: VideoMode
    tools: bool
    guided_decoding: bool
    context_length: int
    # None: the engine does not say; the gateway's settings estimate instead.
    prompt_cost: PromptCost | None = None


class Prefill(msgspec.Struct):
    """What the first response of a generation reports: the prompt was taken, at this size."""

    prompt_tokens: int


class Final(msgspec.Struct):
    """What the last response of a stream reports."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[dict[str, Any]] = []


class TopLogprob(msgspec.Struct):
    """One alternative for a position: the token's bytes and its log-probability."""

    bytes: list[int]
    logprob: float


class TokenLogprob(msgspec.Struct):
    """One generated token: its bytes, its log-probability and the most likely alternatives.

    The log-probabilities are those of the distribution the token was drawn from: after the
    penalties, the temperature and any guided-decoding mask (before ``top_p``). A token the
    mask forbids has none, so under a guide ``top`` may hold fewer alternatives than asked.
    """

    bytes: list[int]
    logprob: float
    top: list[TopLogprob] = []


class DeltaLogprobs(msgspec.Struct):
    """The gateway's view of a ``logprobs`` output: it comes just before the delta it goes with."""

    tokens: list[TokenLogprob]


class Refusal(msgspec.Struct):
    """Why the model refused a request: a message for the client, the param, a code."""

    message: str
    param: str | None = None
    code: str | None = None


_request_decoder = msgspec.json.Decoder(GenerateRequest | DescribeRequest)
_refusal_decoder = msgspec.json.Decoder(Refusal)
_logprobs_decoder = msgspec.json.Decoder(list[TokenLogprob])


def encode_request(request: GenerateRequest | DescribeRequest) -> bytes:
    """Serialize a request for the ``request`` tensor."""
    return msgspec.json.encode(request)


def decode_request(data: bytes) -> GenerateRequest | DescribeRequest:
    """Parse the ``request`` tensor; raises ``msgspec.DecodeError`` naming the bad field."""
    return _request_decoder.decode(data)


def decode_capabilities(data: bytes) -> Capabilities:
    """Parse the ``capabilities`` output."""
    return msgspec.json.decode(data, type=Capabilities)


def encode_capabilities(capabilities: Capabilities) -> bytes:
    """Serialize capabilities for the ``capabilities`` output."""
    return msgspec.json.encode(capabilities)


def encode_refusal(refusal: Refusal) -> str:
    """The error message of a refused request."""
    return msgspec.json.encode(refusal).decode()


def decode_refusal(message: str) -> Refusal | None:
    """A refused request's error message, or None when it is not one (Triton's own errors)."""
    try:
        return _refusal_decoder.decode(message)
    except msgspec.DecodeError:
        return None


def encode_logprobs(tokens: list[TokenLogprob]) -> bytes:
    """Serialize token logprobs for the ``logprobs`` output."""
    return msgspec.json.encode(tokens)


def decode_logprobs(data: bytes) -> DeltaLogprobs:
    """Parse the ``logprobs`` output."""
    return DeltaLogprobs(_logprobs_decoder.decode(data))
