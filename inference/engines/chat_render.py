"""The chat as a Hugging Face processor's chat template wants it, shared by every engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inference.contract import GenerateRequest, ImagePart, Message, TextPart, VideoPart
from inference.engines.base import Media, RequestError


@dataclass
class Rendered:
    """Messages in the template's shape, and the media in the order their parts appear."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    videos: list[list[Any]] = field(default_factory=list)


def render(request: GenerateRequest, media: Media, native_video: bool = False) -> Rendered:
    """The request's messages with media parts resolved against ``media``.

    With ``native_video`` a video is one ``{"type": "video"}`` part and its frames one entry
    of :attr:`Rendered.videos`; without, its sampled frames go in as images, one part each.
    """
    rendered = Rendered()
    for m, message in enumerate(request.messages):
        out = message_dict(message)
        if isinstance(message.content, list):
            parts: list[dict[str, Any]] = []
            for p, part in enumerate(message.content):
                where = f"messages[{m}].content[{p}]"
                if isinstance(part, TextPart):
                    parts.append({"type": "text", "text": part.text})
                elif isinstance(part, ImagePart):
                    rendered.images.append(indexed(media.images, part.index, where, "image"))
                    parts.append({"type": "image"})
                elif isinstance(part, VideoPart):
                    frames = indexed(media.videos, part.index, where, "video")
                    if native_video:
                        rendered.videos.append(frames)
                        parts.append({"type": "video"})
                    else:
                        rendered.images.extend(frames)
                        parts.extend({"type": "image"} for _ in frames)
            out["content"] = parts
        rendered.messages.append(out)
    return rendered


def message_dict(message: Message) -> dict[str, Any]:
    """One message as the chat template reads it (OpenAI shape)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": c.type,
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.name:
        out["name"] = message.name
    return out


def indexed(items: list[Any], index: int, where: str, kind: str) -> Any:
    """``items[index]``, or a RequestError naming the part that points past the media sent."""
    if not 0 <= index < len(items):
        raise RequestError(
            f"{where}: {kind} index {index} but the request carries {len(items)} {kind}s"
        )
    return items[index]


def encode(
    processor: Any,
    rendered: Rendered,
    tools: list[dict[str, Any]] | None,
) -> Any:
    """The prompt's tensors: the chat template rendered, tokenised, and the media processed.

    Text from the request never becomes a control token: ``<image>`` or ``<|im_end|>`` in a
    message, in a tool call's arguments or in a tool's definition is tokenised as the plain
    text it is (transformers' ``sanitize_control_tokens``), so the image tokens are the
    template's own, one run for each image sent. A tokenizer that adds special tokens the
    template does not write (a BOS) cannot be sanitised; its prompt is tokenised as rendered,
    and placeholders that the request wrote fail the processor's count of images (a 400).
    """
    media: dict[str, Any] = {"images": rendered.images}
    if rendered.videos:
        media["videos"] = rendered.videos

    def run(sanitize: bool) -> Any:
        return processor.apply_chat_template(
            rendered.messages,
            tools=tools,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            sanitize_control_tokens=sanitize,
            processor_kwargs=media,
        )

    try:
        return run(sanitize=True)
    except NotImplementedError:
        return run(sanitize=False)
