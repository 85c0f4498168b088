"""The OpenAI Responses request (its stateless subset) as msgspec Structs, and as a chat.

:func:`parse_responses_request` decodes a ``POST /v1/responses`` body, refuses by name what
needs stored state or built-in tools, and turns the rest into the
:class:`~gateway.api.chat_request.ChatCompletionRequest` it means, so that the chat service
(keys, limits, usage records, headers) answers it. The chat's own checks (JSON depth,
unsupported parameters, tools, schemas, media) run on that chat too; their errors are
renamed into this request's terms by :func:`in_responses_terms`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.api import chat_request as chat
from gateway.api.chat_request import Probability
from gateway.errors import ApiError, InvalidRequest, UnsupportedParameter
from gateway.settings import Settings


class InputText(msgspec.Struct, tag="input_text", tag_field="type"):
    """A text part of an input message."""

    text: str


class OutputText(msgspec.Struct, tag="output_text", tag_field="type"):
    """A text part of an earlier answer (an assistant message in the input)."""

    text: str


class InputImage(msgspec.Struct, tag="input_image", tag_field="type"):
    """An image part: an http(s) URL or a ``data:`` URI (``file_id`` needs stored files)."""

    image_url: str | None = None
    detail: Literal["auto", "low", "high"] | None = None
    file_id: str | None = None


InputPart = InputText | OutputText | InputImage


class InputMessage(msgspec.Struct):
    """A message item; ``type`` may be left out, as the SDKs' easy input messages do."""

    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[InputPart]
    type: Literal["message"] = "message"


class TextFormat(msgspec.Struct):
    """``text.format``: plain text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct):
    """``text``: the output's format."""

    format: TextFormat | None = None


class ResponsesRequest(msgspec.Struct):
    """``POST /v1/responses``, as the OpenAI SDK sends it."""

    model: str
    input: str | Annotated[list[InputMessage], Meta(min_length=1)]
    instructions: str | None = None
    max_output_tokens: chat.PositiveInt | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Probability | None = None
    text: TextConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    # Accepted so that they can be refused by name: they need stored state.
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    prompt: dict[str, Any] | None = None

    @property
    def text_format(self) -> TextFormat | None:
        """``text.format``, if given."""
        return self.text.format if self.text else None


_decoder = msgspec.json.Decoder(ResponsesRequest)


def parse_responses_request(body: bytes) -> ResponsesRequest:
    """Decode a body and refuse what this service cannot do, naming the parameter."""
    try:
        request = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, param = chat.validation_param(exc)
        where = f" at `{param}`" if param else ""
        raise InvalidRequest(f"Invalid request: {message}{where}.", param=param) from exc
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request ({exc}). The body must be a JSON "
            "object, sent as UTF-8 with Content-Type application/json.",
            code="invalid_json",
        ) from None
    _refuse_stateful(request)
    return request


def _refuse_stateful(request: ResponsesRequest) -> None:
    stateful = {
        "previous_response_id": request.previous_response_id is not None,
        "store": bool(request.store),
        "conversation": request.conversation is not None,
        "background": bool(request.background),
        "prompt": request.prompt is not None,
    }
    for param, given in stateful.items():
        if given:
            raise UnsupportedParameter(
                f"`{param}` is not supported: this service does not store responses, so "
                "every request must carry its whole input (send `store: false` or leave it out).",
                param=param,
            )
    for i, tool in enumerate(request.tools or []):
        if tool.get("type") != "function":
            raise UnsupportedParameter(
                f"Tools of type `{tool.get('type')}` are not supported; only function tools are.",
                param=f"tools[{i}].type",
            )
    if isinstance(request.input, list):
        for i, item in enumerate(request.input):
            for j, part in enumerate(item.content if isinstance(item.content, list) else []):
                if isinstance(part, InputImage) and part.image_url is None:
                    raise UnsupportedParameter(
                        "Images must be given by `image_url` (a URL or a data: URI); "
                        "`file_id` needs stored files, which this service does not keep.",
                        param=f"input[{i}].content[{j}].image_url",
                    )


def _message(item: InputMessage) -> chat.ChatMessage:
    """An input message as the chat message it means."""
    if isinstance(item.content, str):
        text: str | list[chat.TextContent] = item.content
    else:
        text = [chat.TextContent(p.text) for p in item.content if not isinstance(p, InputImage)]
    if item.role == "system":
        return chat.SystemMessage(text)
    if item.role == "developer":
        return chat.DeveloperMessage(text)
    if item.role == "assistant":
        return chat.AssistantMessage(text)
    if isinstance(item.content, str):
        return chat.UserMessage(item.content)
    parts: list[chat.UserPart] = []
    for part in item.content:
        if isinstance(part, InputImage):
            assert part.image_url is not None  # refused while parsing
            parts.append(chat.ImageContent(chat.ImageURL(part.image_url, part.detail)))
        else:
            parts.append(chat.TextContent(part.text))
    return chat.UserMessage(parts)


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A Responses function tool (flat) as a chat tool (nested under ``function``)."""
    function = {key: value for key, value in tool.items() if key != "type"}
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """``{"type": "function", "name": ...}`` as the chat's named choice; strings as they are."""
    if not isinstance(choice, dict):
        return choice
    if choice.get("type") != "function":
        raise UnsupportedParameter(
            f"`tool_choice` of type `{choice.get('type')}` is not supported; give "
            '"none", "auto", "required" or {"type": "function", "name": ...}.',
            param="tool_choice",
        )
    return {"type": "function", "function": {"name": choice.get("name")}}


def _response_format(fmt: TextFormat | None) -> chat.ResponseFormat | None:
    if fmt is None:
        return None
    if fmt.type != "json_schema":
        return chat.ResponseFormat(fmt.type)
    if fmt.name is None:
        raise InvalidRequest(
            "`text.format.name` is required when `text.format.type` is json_schema.",
            param="text.format.name",
        )
    schema = chat.JSONSchemaFormat(fmt.name, fmt.schema, fmt.description, fmt.strict)
    return chat.ResponseFormat("json_schema", schema)


def as_chat(request: ResponsesRequest, settings: Settings) -> chat.ChatCompletionRequest:
    """The chat completion this request means, checked as the chat endpoint checks one."""
    messages: list[chat.ChatMessage] = []
    if request.instructions is not None:
        messages.append(chat.SystemMessage(request.instructions))
    if isinstance(request.input, str):
        messages.append(chat.UserMessage(request.input))
    else:
        messages.extend(_message(item) for item in request.input)
    completion = chat.ChatCompletionRequest(
        model=request.model,
        messages=messages,
        max_completion_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stream=request.stream,
        user=request.user,
        response_format=_response_format(request.text_format),
        tools=[_tool(tool) for tool in request.tools] if request.tools else None,
        tool_choice=_tool_choice(request.tool_choice),
        parallel_tool_calls=request.parallel_tool_calls,
    )
    # The chat's checks (depth of free-form JSON, refusals) on the chat it became.
    return chat.parse_chat_request(msgspec.json.encode(completion), settings)


# A chat parameter's path, and what the same parameter is called in a Responses request.
_RENAMED = (
    (re.compile(r"^response_format(\.json_schema)?"), "text.format"),
    (re.compile(r"^tools\[(\d+)\]\.function"), r"tools[\1]"),
    (re.compile(r"^max_completion_tokens"), "max_output_tokens"),
    (re.compile(r"\.image_url\.url$"), ".image_url"),
)
_MESSAGE = re.compile(r"^messages\[(\d+)\]")


def _renamed(param: str, request: ResponsesRequest) -> str:
    for pattern, name in _RENAMED:
        param = pattern.sub(name, param)
    message = _MESSAGE.match(param)
    if message is None:
        return param
    index = int(message.group(1)) - (request.instructions is not None)
    if index < 0:
        return "instructions"
    if isinstance(request.input, str):
        return "input"
    return f"input[{index}]{param[message.end() :]}"


def in_responses_terms(error: ApiError, request: ResponsesRequest) -> ApiError:
    """A chat error, its ``param`` (and the message's mentions of it) as this request names it."""
    if error.param is not None:
        renamed = _renamed(error.param, request)
        error.message = error.message.replace(f"`{error.param}`", f"`{renamed}`")
        error.param = renamed
    return error
