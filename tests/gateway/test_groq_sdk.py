"""The unmodified `groq` SDK, whose base URL is the gateway root (it calls /openai/v1/...)."""

from __future__ import annotations

import groq
import pytest

from tests.support.chat import MODEL
from tests.support.media import image_data_uri
from tests.support.processes import GatewayProcess


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> groq.Groq:
    return groq.Groq(base_url=gateway.url, api_key=gateway.api_key, max_retries=0)


def test_base64_image_as_in_groqs_guide(client: groq.Groq) -> None:
    chat_completion = client.chat.completions.create(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {"type": "image_url", "image_url": {"url": image_data_uri(1)}},
                ],
            }
        ],
        model=MODEL,
        max_completion_tokens=5,
    )
    assert isinstance(chat_completion.choices[0].message.content, str)
    assert chat_completion.x_groq is not None and chat_completion.x_groq.id.startswith("req_")
    assert chat_completion.usage is not None
    assert chat_completion.usage.total_time is not None
    assert chat_completion.usage.total_time > 0


def test_multi_turn_with_image_in_first_turn(client: groq.Groq) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": image_data_uri(2)}},
                ],
            },
            {"role": "assistant", "content": "A landscape."},
            {"role": "user", "content": "Tell me more about the area."},
        ],
        temperature=1,
        max_completion_tokens=5,
        top_p=1,
        stream=False,
        stop=None,
    )
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason in ("stop", "length")


def test_stream(client: groq.Groq) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True
    )
    chunks = list(stream)
    assert chunks[0].x_groq is not None and chunks[0].x_groq.id.startswith("req_")
    last = chunks[-1]
    assert last.choices[0].finish_reason in ("stop", "length")
    assert last.x_groq is not None and last.x_groq.usage is not None
    assert last.x_groq.usage.completion_tokens <= 4


async def test_async(gateway: GatewayProcess) -> None:
    client = groq.AsyncGroq(base_url=gateway.url, api_key=gateway.api_key, max_retries=0)
    completion = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert completion.usage is not None and completion.usage.completion_tokens <= 3
    models = await client.models.list()
    assert [m.id for m in models.data] == [MODEL]
