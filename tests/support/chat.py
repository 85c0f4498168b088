"""Chat requests for the default model, and reading what the gateway answers.

Bodies for raw HTTP (:func:`chat`, :func:`chat_body`), messages and content parts, calls
through the ``openai`` SDK (:func:`ask`, :func:`refused`), and a streamed answer being read
(:func:`open_stream`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from gateway.limits import estimate_prompt
from gateway.settings import Settings
from inference import tiny_vlm
from inference.prompt_cost import measure as measure_prompt_cost
from tests.support.media import image_data_uri

MODEL = tiny_vlm.MODEL_ID
# In the ops tests' prompts, to prove that prompts never reach the logs.
PROMPT_MARKER = "zebra-quartz-ops-prompt-7731"


def chat(max_tokens: int = 1, content: str = "Hi", **extra: Any) -> dict[str, Any]:
    """A chat request body for the default model (greedy, so runs are repeatable)."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }


def chat_body(max_tokens: int = 8, **extra: Any) -> dict[str, Any]:
    """A small chat request for the default model whose prompt carries PROMPT_MARKER."""
    return chat(max_tokens, f"Say hi {PROMPT_MARKER}", **extra)


def image_message(text: str = "What's in this image?", seed: int = 0) -> dict[str, object]:
    """A user message with text and a base64 image, as Groq's vision guide writes it."""
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": image_data_uri(seed)}},
        ],
    }


@functools.cache
def processor() -> Any:
    """The default model's processor (its tokenizer and chat template), loaded once."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_vlm.default_path())


def reserved(max_tokens: int, content: str = "Hi", images: int = 0) -> int:
    """The tokens admission reserves for one user message of ``content`` and ``images``.

    The gateway's prompt estimate (docs/admin.md) with the prompt cost the default model
    measures of its own tokenizer and template, as its capabilities report it, plus the
    completion's ceiling: what ``chat(max_tokens, content)`` reserves, exactly.
    """
    prompt = estimate_prompt(
        Settings(),
        measure_prompt_cost(processor()),
        text_chars=len(content),
        messages=1,
        images=images,
        video_frames=0,
    )
    return prompt + max_tokens


def prompt_tokens(content: str = "Hi") -> int:
    """The prompt tokens the default model really counts for ``chat(max_tokens, content)``."""
    messages = [{"role": "user", "content": content}]
    text = processor().apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(processor().tokenizer(text, add_special_tokens=False)["input_ids"])


def asked_tokens(images: int) -> int:
    """The prompt tokens the default model counts for :func:`ask` with ``images`` pictures.

    Each picture costs its image tokens and its number in the template ("Picture 2: "),
    which need not tokenise alike for every number.
    """
    from PIL import Image

    content = [{"type": "text", "text": "Describe."}, *({"type": "image"} for _ in range(images))]
    inputs = processor().apply_chat_template(
        [{"role": "user", "content": content}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        processor_kwargs={"images": [Image.new("RGB", (48, 40))] * images or None},
    )
    return len(inputs["input_ids"][0])


def image(url: str) -> dict[str, Any]:
    """An ``image_url`` content part."""
    return {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}


def video_url(url: str) -> dict[str, Any]:
    """A ``video_url`` content part."""
    return {"type": "video_url", "video_url": {"url": url}}


def ask(client: openai.OpenAI, *parts: dict[str, Any], model: str = MODEL, **extra: Any) -> Any:
    """A short seeded completion of "Describe." and ``parts``, through the SDK."""
    content = [{"type": "text", "text": "Describe."}, *parts]
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
        max_tokens=3,
        seed=1,
        **extra,
    )


def refused(call: Callable[[], object], status: int, code: str, param: str | None = None) -> str:
    """Assert ``call()`` fails with this status and code (and param); the message."""
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    error = caught.value
    assert error.status_code == status, error.body
    assert isinstance(error.body, dict)
    assert error.body["type"] == "invalid_request_error"
    assert error.body["code"] == code, error.body
    if param is not None:
        assert error.body["param"] == param
    return str(error.body["message"])


def parse_sse(lines: list[str]) -> list[str]:
    """The data payloads of an SSE body."""
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


@dataclass
class OpenStream:
    """A streamed completion being read: the response and its event lines.

    The line iterator must stay referenced: once it is garbage-collected, httpx closes the
    response, which is a client walking away mid-stream.
    """

    response: httpx.Response
    lines: AsyncIterator[str]

    async def aclose(self) -> None:
        """Walk away: close the connection mid-stream."""
        await self.response.aclose()


async def open_stream(http: httpx.AsyncClient, body: dict[str, Any]) -> OpenStream:
    """Start a streamed completion and read its first event."""
    request = http.build_request("POST", "/v1/chat/completions", json=body)
    response = await http.send(request, stream=True)
    assert response.status_code == 200, await response.aread()
    lines = response.aiter_lines()
    async for line in lines:
        if line.startswith("data: "):
            first = json.loads(line[6:])
            assert first["choices"][0]["delta"]["role"] == "assistant"
            return OpenStream(response, lines)
    raise AssertionError("the stream ended before its first event")
