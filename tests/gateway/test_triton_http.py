"""The HTTP transport to Triton: events split anywhere, media sent base64, errors mapped."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from gateway.backend.stream import ModelResponse
from gateway.backend.triton_http import (
    Connection,
    TritonHttpBackend,
    _decode_response,  # the decoder the transport uses
    request_body,
)
from gateway.errors import BackendUnavailable, InvalidRequest
from gateway.settings import Settings
from gateway.triton_process import EmbeddedTriton
from inference import contract
from tests.support.processes import free_port

EVENTS = [
    {"model_name": "vlm", "prompt_tokens": 12},
    {"model_name": "vlm", "text_delta": "Red \\n\n\n"},
    {"finish_reason": "stop", "prompt_tokens": 12, "completion_tokens": 1, "text_delta": ""},
]


class Transport:
    """What Connection needs of a transport, recording what was written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def writelines(self, data: list[bytes]) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def sse_response(events: list[dict[str, object]]) -> bytes:
    """Triton's chunked response of server-sent events, one chunk per event."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    chunks = b""
    for event in events:
        data = b"data: " + json.dumps(event).encode() + b"\n\n"
        chunks += f"{len(data):x}\r\n".encode() + data + b"\r\n"
    return head + chunks + b"0\r\n\r\n"


async def read_all(connection: Connection) -> list[ModelResponse]:
    events = []
    while (event := await connection.event()) is not None:
        events.append(_decode_response(event))
    return events


@pytest.mark.parametrize("piece", [1, 7, 10_000])
async def test_events_split_across_reads_come_back_whole(piece: int) -> None:
    connection = Connection()
    connection.connection_made(Transport())  # type: ignore[arg-type]
    connection.send(b"POST / HTTP/1.1\r\n\r\n", b"")
    data = sse_response(EVENTS)
    reader = asyncio.create_task(read_all(connection))
    for start in range(0, len(data), piece):
        connection.data_received(data[start : start + piece])
        await asyncio.sleep(0)
    events = await reader
    assert [e.prompt_tokens for e in events] == [12, None, 12]
    assert events[1].text_delta == "Red \\n\n\n"  # a blank line inside JSON is escaped
    assert events[2].finish_reason == "stop" and connection.complete and connection.usable


async def test_a_response_that_closes_its_connection_leaves_it_unused() -> None:
    connection = Connection()
    connection.connection_made(Transport())  # type: ignore[arg-type]
    connection.send(b"POST / HTTP/1.1\r\n\r\n", b"")
    data = sse_response(EVENTS).replace(b"OK\r\n", b"OK\r\nConnection: close\r\n", 1)
    connection.data_received(data)
    assert len(await read_all(connection)) == 3
    assert not connection.usable


async def test_a_connection_lost_midway_raises_instead_of_waiting() -> None:
    connection = Connection()
    connection.connection_made(Transport())  # type: ignore[arg-type]
    connection.send(b"POST / HTTP/1.1\r\n\r\n", b"")
    data = sse_response(EVENTS)
    connection.data_received(data[:80])
    reader = asyncio.create_task(read_all(connection))
    await asyncio.sleep(0)
    connection.connection_lost(None)
    with pytest.raises(ConnectionResetError):
        await reader
    assert not connection.usable


def test_media_go_base64_with_the_parameter_that_says_so() -> None:
    body = json.loads(request_body(b'{"op":"describe"}', [b"\xff\xd8ab"], [b"f1", b"f2"], [2]))
    assert body[contract.INPUT_REQUEST] == '{"op":"describe"}'
    assert body[contract.INPUT_IMAGES] == [base64.b64encode(b"\xff\xd8ab").decode()]
    assert body[contract.INPUT_VIDEO_FRAMES] == ["ZjE=", "ZjI="]
    assert body[contract.INPUT_VIDEO_FRAME_COUNTS] == [2]
    assert body["parameters"] == {contract.MEDIA_ENCODING_PARAMETER: contract.MEDIA_BASE64}
    assert "parameters" not in json.loads(request_body(b"{}"))


@pytest.fixture
async def backend(triton: EmbeddedTriton) -> AsyncIterator[TritonHttpBackend]:
    client = TritonHttpBackend(Settings(), triton.http_url)
    await client.open()
    yield client
    await client.close()


def png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    return buffer.getvalue()


def ask(text: str, images: int = 0) -> contract.GenerateRequest:
    parts: list[contract.Part] = [contract.TextPart(text)]
    parts += [contract.ImagePart(i) for i in range(images)]
    message = contract.Message("user", parts)
    return contract.GenerateRequest(messages=[message], max_tokens=3, temperature=0.0)


async def test_the_model_decodes_images_sent_over_http(backend: TritonHttpBackend) -> None:
    items = [item async for item in backend.generate("vlm", ask("Hi", 2), [png("red")] * 2)]
    final = items[-1]
    assert isinstance(final, contract.Final) and final.completion_tokens == 3
    text_only = [item async for item in backend.generate("vlm", ask("Hi"))][-1]
    assert isinstance(text_only, contract.Final)
    # Two pictures' tokens reached the model: the image bytes arrived decoded.
    assert final.prompt_tokens > text_only.prompt_tokens + 2 * 9
    assert backend.idle_streams == 1


async def test_bad_base64_is_the_models_refusal_naming_the_input(triton: EmbeddedTriton) -> None:
    body = {
        contract.INPUT_REQUEST: contract.encode_request(ask("Hi", 1)).decode(),
        contract.INPUT_IMAGES: ["not base64!"],
        "parameters": {contract.MEDIA_ENCODING_PARAMETER: contract.MEDIA_BASE64},
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{triton.http_url}/v2/models/vlm/generate_stream", json=body)
    assert response.status_code == 400
    refusal = contract.decode_refusal(json.loads(response.text.removeprefix("data: "))["error"])
    assert refusal is not None and "input 'images' is not valid base64" in refusal.message


async def test_an_unknown_model_is_unavailable_and_the_connection_is_kept(
    backend: TritonHttpBackend,
) -> None:
    with pytest.raises(BackendUnavailable, match="the model is not ready"):
        async for _ in backend.generate("nope", ask("Hi")):
            pass
    assert backend.idle_streams == 1
    assert not await backend.ready("nope")
    assert await backend.ready("vlm")


async def test_a_refusal_keeps_its_parameter(backend: TritonHttpBackend) -> None:
    with pytest.raises(InvalidRequest) as refused:
        async for _ in backend.generate("vlm", ask("Hi", 1)):  # one image named, none sent
            pass
    assert "image" in refused.value.message


async def test_an_unreachable_server_is_unavailable() -> None:
    backend = TritonHttpBackend(Settings(), f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendUnavailable, match="unreachable"):
        async for _ in backend.generate("vlm", ask("Hi")):
            pass
    assert not await backend.ready("vlm")
