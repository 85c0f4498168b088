"""Media intake: the one place where a chat's media parts become the contract's tensors.

Every ``image_url`` / ``video_url`` part is replaced by an indexed
:class:`~inference.contract.ImagePart` / :class:`~inference.contract.VideoPart`, and its
bytes go into :attr:`Intake.images` / :attr:`Intake.video_frames`. A part that cannot be
taken raises :class:`MediaError` whose ``param`` is the part's path, e.g.
``messages[0].content[1].image_url.url``.

Today this accepts base64 ``data:image/...`` URIs. Fetching URLs, ``file://`` roots, video,
size and pixel caps belong here too, behind the same :func:`intake`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.api.chat_request import (
    AssistantMessage,
    ChatMessage,
    DeveloperMessage,
    ImageContent,
    SystemMessage,
    TextContent,
    ToolMessage,
    UserMessage,
    VideoContent,
)
from gateway.errors import InvalidRequest
from gateway.media.data_uri import DataURIError, decode_data_uri, is_data_uri
from gateway.registry import ModelEntry
from gateway.settings import Settings
from inference import contract


class MediaError(InvalidRequest):
    """A media part cannot be taken; ``param`` is its path in the request."""

    code = "invalid_media"


@dataclass
class Intake:
    """The contract's view of a chat: messages with indexed media, and the media's bytes."""

    messages: list[contract.Message]
    images: list[bytes] = field(default_factory=list)
    video_frames: list[bytes] = field(default_factory=list)
    frame_counts: list[int] = field(default_factory=list)


def _text(content: str | list[TextContent]) -> str | list[contract.Part]:
    if isinstance(content, str):
        return content
    return [contract.TextPart(part.text) for part in content]


async def intake(messages: list[ChatMessage], model: ModelEntry, settings: Settings) -> Intake:
    """Turn the request's messages into contract messages plus media bytes."""
    result = Intake(messages=[])
    for i, message in enumerate(messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            converted = contract.Message("system", _text(message.content), name=message.name)
        elif isinstance(message, UserMessage):
            converted = contract.Message(
                "user", await _user_content(message, i, model, result), name=message.name
            )
        elif isinstance(message, AssistantMessage):
            calls = [
                contract.ToolCall(
                    c.id, contract.ToolCallFunction(c.function.name, c.function.arguments)
                )
                for c in message.tool_calls or []
            ]
            content = None if message.content is None else _text(message.content)
            converted = contract.Message(
                "assistant", content, name=message.name, tool_calls=calls or None
            )
        else:
            assert isinstance(message, ToolMessage)
            converted = contract.Message(
                "tool", _text(message.content), tool_call_id=message.tool_call_id
            )
        result.messages.append(converted)
    return result


async def _user_content(
    message: UserMessage, i: int, model: ModelEntry, result: Intake
) -> str | list[contract.Part]:
    if isinstance(message.content, str):
        return message.content
    parts: list[contract.Part] = []
    for j, part in enumerate(message.content):
        where = f"messages[{i}].content[{j}]"
        if isinstance(part, TextContent):
            parts.append(contract.TextPart(part.text))
        elif isinstance(part, ImageContent):
            parts.append(_image(part.image_url.url, f"{where}.image_url.url", model, result))
        elif isinstance(part, VideoContent):
            raise MediaError(
                f"Video input is not accepted by this gateway yet ({where}).",
                param=f"{where}.video_url",
            )
        else:  # audio and file parts are refused while parsing
            raise MediaError(f"Unsupported content part at {where}.", param=f"{where}.type")
    return parts


def _image(url: str, where: str, model: ModelEntry, result: Intake) -> contract.ImagePart:
    if not model.vision:
        raise MediaError(f"The model `{model.id}` does not accept images.", param=where)
    if len(result.images) >= model.max_images:
        raise MediaError(
            f"Too many images: the model `{model.id}` accepts at most {model.max_images} "
            "images per request.",
            param=where,
            code="too_many_images",
        )
    if not is_data_uri(url):
        raise MediaError(
            "Only base64 `data:image/...;base64,` URIs are accepted for images here.", param=where
        )
    try:
        _, data = decode_data_uri(url, "image")
    except DataURIError as exc:
        raise MediaError(f"Invalid image data URI: {exc}.", param=where) from exc
    result.images.append(data)
    return contract.ImagePart(len(result.images) - 1)
