"""The OpenAI chat-completions request as msgspec Structs, and its parsing into one.

Unknown fields are ignored (the SDKs send new ones before we know them); parameters the
service cannot honour are refused by name in :func:`parse_chat_request`. JSON floats are finite
by construction (msgspec refuses ``NaN`` and numbers beyond a double's range); every number has
bounds, and free-form JSON a depth limit, so that no input reaches the code below as a crash.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.api.json_shape import shape
from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.settings import Settings


class TextContent(msgspec.Struct, tag="text", tag_field="type"):
    """A text part."""

    text: str


class ImageURL(msgspec.Struct):
    """Where an image comes from: an http(s) URL, a ``data:`` URI, or an allowed local file."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageContent(msgspec.Struct, tag="image_url", tag_field="type"):
    """An image part."""

    image_url: ImageURL


class VideoURL(msgspec.Struct):
    """Where a video comes from (MAX and vllm-mlx spell it ``video_url``)."""

    url: str


class VideoContent(msgspec.Struct, tag="video_url", tag_field="type"):
    """A video part."""

    video_url: VideoURL


class VideoPath(msgspec.Struct, tag="video", tag_field="type"):
    """vllm-mlx's video part, ``{"type": "video", "video": "/path/to/video.mp4"}``."""

    video: str


class InputAudio(msgspec.Struct, tag="input_audio", tag_field="type"):
    """An audio part: parsed so that it can be refused by name."""

    input_audio: dict[str, Any]


class FileContent(msgspec.Struct, tag="file", tag_field="type"):
    """A file part: parsed so that it can be refused by name."""

    file: dict[str, Any]


UserPart = TextContent | ImageContent | VideoContent | VideoPath | InputAudio | FileContent


class SystemMessage(msgspec.Struct, tag="system", tag_field="role"):
    """A system message."""

    content: str | list[TextContent]
    name: str | None = None


class DeveloperMessage(msgspec.Struct, tag="developer", tag_field="role"):
    """OpenAI's newer name for a system message."""

    content: str | list[TextContent]
    name: str | None = None


class UserMessage(msgspec.Struct, tag="user", tag_field="role"):
    """A user message: text, or parts with images and videos."""

    content: str | list[UserPart]
    name: str | None = None


class FunctionCall(msgspec.Struct):
    """The function of an assistant's tool call."""

    name: str
    arguments: str


class ToolCall(msgspec.Struct):
    """An assistant's tool call in the history."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class AssistantMessage(msgspec.Struct, tag="assistant", tag_field="role"):
    """An earlier answer in the conversation."""

    content: str | list[TextContent] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class ToolMessage(msgspec.Struct, tag="tool", tag_field="role"):
    """A tool's result."""

    content: str | list[TextContent]
    tool_call_id: str


ChatMessage = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


class StreamOptions(msgspec.Struct):
    """Streaming options."""

    include_usage: bool | None = None


class JSONSchemaFormat(msgspec.Struct):
    """The ``json_schema`` member of a structured-output response format."""

    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct):
    """``{"type": "text" | "json_object" | "json_schema", ...}``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
PositiveInt = Annotated[int, Meta(ge=1)]
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
# Frames per second a client may ask to sample a video at (docs/api.md).
MAX_VIDEO_FPS = 60.0
# OpenAI's ceiling on `top_logprobs`.
MAX_TOP_LOGPROBS = 20


class ChatCompletionRequest(msgspec.Struct):
    """``POST /v1/chat/completions``, as the OpenAI and Groq SDKs send it."""

    model: str
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Probability | None = None
    seed: Int64 | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    n: int | None = None  # 1 to settings.max_n choices
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    user: str | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # Video sampling (MAX and vllm-mlx extra body fields); defaults and frame ceiling: settings.
    video_fps: Annotated[float, Meta(gt=0.0, le=MAX_VIDEO_FPS)] | None = None
    video_max_frames: PositiveInt | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None  # 0 to MAX_TOP_LOGPROBS, only with logprobs
    # Accepted so that they can be refused by name; the service cannot honour them.
    logit_bias: dict[str, float] | None = None
    audio: dict[str, Any] | None = None
    modalities: list[str] | None = None

    @property
    def stop_list(self) -> list[str]:
        """``stop`` as a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else self.stop

    @property
    def choices(self) -> int:
        """How many choices to generate (``n``, 1 when unset)."""
        return self.n or 1

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")


def validation_param(error: msgspec.ValidationError) -> tuple[str, str | None]:
    """msgspec's message without its path, and the path as OpenAI names a param."""
    message = str(error)
    match = _PATH.search(message)
    path = match.group(1) if match else None
    if match:
        message = message[: match.start()]
    missing = _MISSING.match(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return message, path or None


def parse_chat_request(body: bytes, settings: Settings) -> ChatCompletionRequest:
    """Decode and check a request body; raise InvalidRequest naming the offending param."""
    try:
        request = _decoder.decode(body)
    except RecursionError:
        # Deeper than the parser's stack allows (about a thousand levels), in any field.
        raise InvalidRequest(
            "The JSON body of your request is nested too deeply to parse; it may nest at most "
            f"{settings.max_json_depth} levels.",
            code="invalid_json",
        ) from None
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise InvalidRequest(
            f"The body of your request is not valid UTF-8 ({exc.reason}: byte 0x{byte:02x} in a "
            "string). JSON must be sent as UTF-8.",
            code="invalid_json",
        ) from None
    except msgspec.ValidationError as exc:
        message, param = validation_param(exc)
        where = f" at `{param}`" if param else ""
        raise InvalidRequest(f"Invalid request: {message}{where}.", param=param) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request ({exc}). The body must be a JSON "
            "object with Content-Type application/json.",
            code="invalid_json",
        ) from exc
    _check_depth(request, settings.max_json_depth)
    _refuse_unsupported(request)
    if request.n is not None and not 1 <= request.n <= settings.max_n:
        # OpenAI's codes for an integer out of its range.
        low = request.n < 1
        raise InvalidRequest(
            f"`n` must be between 1 and {settings.max_n}; got {request.n}.",
            param="n",
            code="integer_below_min_value" if low else "integer_above_max_value",
        )
    return request


def _check_depth(request: ChatCompletionRequest, max_depth: int) -> None:
    """Free-form JSON that travels on (to jsonschema, the chat template, the model) is bounded.

    Depth counts from the body's root: the body is level 1, ``tools`` level 2, each tool 3.
    """
    free_form: list[tuple[str, int, Any]] = [
        (f"tools[{i}]", 2, tool) for i, tool in enumerate(request.tools or [])
    ]
    if isinstance(request.tool_choice, dict):
        free_form.append(("tool_choice", 1, request.tool_choice))
    fmt = request.response_format
    if fmt is not None and fmt.json_schema is not None and fmt.json_schema.schema is not None:
        free_form.append(("response_format.json_schema.schema", 3, fmt.json_schema.schema))
    for param, above, value in free_form:
        depth = above + shape(value).depth
        if depth > max_depth:
            raise InvalidRequest(
                f"`{param}` nests the request body {depth} levels deep; it may nest at most "
                f"{max_depth} levels.",
                param=param,
                code="too_deeply_nested",
            )


def _refuse_unsupported(request: ChatCompletionRequest) -> None:
    top = request.top_logprobs
    if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
        raise InvalidRequest(
            f"`top_logprobs` must be between 0 and {MAX_TOP_LOGPROBS}; got {top}.",
            param="top_logprobs",
        )
    if top is not None and not request.logprobs:
        raise InvalidRequest(
            "`top_logprobs` is only allowed when `logprobs` is true.", param="top_logprobs"
        )
    if request.logit_bias:
        raise UnsupportedParameter(
            "`logit_bias` is not supported by this service.", param="logit_bias"
        )
    if request.audio is not None or (request.modalities and "audio" in request.modalities):
        param = "audio" if request.audio is not None else "modalities"
        raise UnsupportedParameter("Audio output is not supported by this service.", param=param)
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "`stream_options` is only allowed when `stream` is true.", param="stream_options"
        )
    for i, message in enumerate(request.messages):
        if isinstance(message, UserMessage) and isinstance(message.content, list):
            for j, part in enumerate(message.content):
                if isinstance(part, InputAudio | FileContent):
                    kind = "Audio" if isinstance(part, InputAudio) else "File"
                    raise UnsupportedParameter(
                        f"{kind} content parts are not supported by this service.",
                        param=f"messages[{i}].content[{j}].type",
                    )
