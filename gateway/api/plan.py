"""One walk over a parsed chat: what the model gets, what intake loads, what admission counts.

:func:`plan_chat` turns the request's messages into contract messages whose media parts are
indexed placeholders (:class:`~inference.contract.ImagePart` / ``VideoPart``), lists those
parts as :class:`~gateway.media.MediaRef` for intake (with the param path an error names,
e.g. ``messages[0].content[1].image_url.url``), and counts, on the way, what the token
estimate needs: text characters (tool calls and tool schemas included), messages, images,
and the frames the videos may become; and how many choices (``n``) admission reserves for.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from gateway.api.chat_request import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    ImageContent,
    SystemMessage,
    TextContent,
    ToolMessage,
    UserMessage,
    UserPart,
    VideoContent,
    VideoPath,
)
from gateway.media import MediaRef
from gateway.media.intake import frames_per_video
from gateway.settings import Settings
from inference import contract


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """A chat as the model will get it, its media to load, and its size for the estimate."""

    messages: list[contract.Message]
    media: list[MediaRef]
    text_chars: int
    images: int
    # The most frames the request's videos may become (before any is fetched).
    video_frames: int
    # Completions to generate (`n`); each may use the whole completion ceiling.
    choices: int = 1

    @property
    def message_count(self) -> int:
        """Messages in the conversation."""
        return len(self.messages)


class _Walk:
    """The state of one walk: media found so far and characters counted."""

    def __init__(self) -> None:
        self.media: list[MediaRef] = []
        self.images = 0
        self.videos = 0
        self.chars = 0

    def text(self, content: str | list[TextContent]) -> str | list[contract.Part]:
        if isinstance(content, str):
            self.chars += len(content)
            return content
        self.chars += sum(len(part.text) for part in content)
        return [contract.TextPart(part.text) for part in content]

    def user(self, content: str | list[UserPart], i: int) -> str | list[contract.Part]:
        if isinstance(content, str):
            self.chars += len(content)
            return content
        parts: list[contract.Part] = []
        for j, part in enumerate(content):
            if isinstance(part, TextContent):
                self.chars += len(part.text)
                parts.append(contract.TextPart(part.text))
            elif isinstance(part, ImageContent):
                where = f"messages[{i}].content[{j}].image_url.url"
                self.media.append(MediaRef("image", part.image_url.url, where))
                parts.append(contract.ImagePart(self.images))
                self.images += 1
            else:  # audio and file parts are refused while parsing
                assert isinstance(part, VideoContent | VideoPath)
                if isinstance(part, VideoContent):
                    url, where = part.video_url.url, f"messages[{i}].content[{j}].video_url.url"
                else:
                    url, where = part.video, f"messages[{i}].content[{j}].video"
                self.media.append(MediaRef("video", url, where))
                parts.append(contract.VideoPart(self.videos))
                self.videos += 1
        return parts

    def assistant(self, message: AssistantMessage) -> contract.Message:
        calls = []
        for call in message.tool_calls or ():
            self.chars += len(call.function.arguments)
            function = contract.ToolCallFunction(call.function.name, call.function.arguments)
            calls.append(contract.ToolCall(call.id, function))
        content = None if message.content is None else self.text(message.content)
        return contract.Message("assistant", content, name=message.name, tool_calls=calls or None)


def plan_chat(chat: ChatCompletionRequest, settings: Settings) -> ChatPlan:
    """The request's plan, in one walk over its messages."""
    walk = _Walk()
    messages: list[contract.Message] = []
    for i, message in enumerate(chat.messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            messages.append(
                contract.Message("system", walk.text(message.content), name=message.name)
            )
        elif isinstance(message, UserMessage):
            messages.append(
                contract.Message("user", walk.user(message.content, i), name=message.name)
            )
        elif isinstance(message, AssistantMessage):
            messages.append(walk.assistant(message))
        else:
            assert isinstance(message, ToolMessage)
            content = walk.text(message.content)
            messages.append(contract.Message("tool", content, tool_call_id=message.tool_call_id))
    if chat.tools:  # their schemas go into the prompt
        walk.chars += len(msgspec.json.encode(chat.tools))
    return ChatPlan(
        messages=messages,
        media=walk.media,
        text_chars=walk.chars,
        images=walk.images,
        video_frames=walk.videos * frames_per_video(chat.video_max_frames, settings),
        choices=chat.choices,
    )
