"""Triton over HTTP: its ``generate_stream`` endpoint on keep-alive connections of our own.

Chosen by a Triton URL with ``http://`` (the default: the embedded Triton's HTTP port).
A request is one ``POST /v2/models/<model>/generate_stream``: the contract's tensors as one
JSON object (the ``request`` JSON as a string; images and video frames base64-encoded,
which the ``media_encoding`` request parameter tells the model), answered by one
server-sent event per response of the model, each a JSON object of its outputs; the HTTP
response ends where Triton ends the request. A connection carries one request at a time
and is kept for the next once its response has ended; leaving early (the client
disconnected), an error or the request's timeout closes it, and Triton then cancels the
request, which the model sees (``is_cancelled()``).

Why not gRPC: measured on this 2-core machine against the same Triton, a one-token request
costs the client about 0.13 ms of CPU here and 0.46–0.59 ms through ``grpc.aio`` (each gRPC
message crosses between gRPC's own thread and the event loop). The connection is an
asyncio protocol parsed by httptools (uvicorn's parser, already a dependency): a general
HTTP client (httpx) costs more per request than the whole gRPC path.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator, Sequence
from typing import cast
from urllib.parse import urlsplit

import httptools
import msgspec

from gateway.backend.stream import ModelResponse, TritonStreams
from gateway.errors import ApiError
from gateway.settings import Settings
from inference import contract

# Idle connections kept for reuse; beyond this many (after a burst) a finished one is closed.
MAX_IDLE_CONNECTIONS = 64
_EVENT_END = b"\n\n"
_DATA = b"data: "
_decode_response = msgspec.json.Decoder(ModelResponse).decode


class _Error(msgspec.Struct):
    error: str = ""


_decode_error = msgspec.json.Decoder(_Error).decode


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to Triton; one request and response at a time.

    The response's body is split into its server-sent events as it arrives; a reader waits
    for the next one with :meth:`event`.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._reset()
        self.lost: Exception | None = None

    def _reset(self) -> None:
        self.status = 0
        self.headers_done = False
        self.complete = False
        self._body = bytearray()
        self._events: collections.deque[bytes] = collections.deque()

    @property
    def usable(self) -> bool:
        """Open, and its last response (if any) read to the end."""
        return self.lost is None and self.transport is not None and not self.transport.is_closing()

    def send(self, head: bytes, body: bytes) -> None:
        """Write a request whose response has not started yet."""
        assert self.transport is not None
        self._reset()
        self.transport.writelines((head, body))

    def close(self) -> None:
        """Close it (Triton cancels a request still running on it)."""
        if self.transport is not None:
            self.transport.close()

    async def head(self) -> int:
        """Wait for the response's status line and headers; its status code."""
        while not self.headers_done:
            await self._wait()
        return self.status

    async def event(self) -> bytes | None:
        """The next server-sent event's data; None at the end of the response."""
        while not self._events:
            if self.complete:
                return None
            await self._wait()
        return self._events.popleft()

    async def body(self) -> bytes:
        """The whole body of a response that is not a stream of events (an error)."""
        while not self.complete:
            await self._wait()
        return bytes(self._body)

    async def _wait(self) -> None:
        if self.lost is not None:
            raise self.lost
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.lost = ConnectionError(f"Triton sent a malformed response: {exc}")
            self.close()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = exc or ConnectionResetError("Triton closed the connection")
        self._wake()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        buffer = self._body
        buffer += body
        if self.status != 200:
            return  # an error's body, read whole
        start = 0
        while (end := buffer.find(_EVENT_END, start)) >= 0:
            if buffer.startswith(_DATA, start):
                self._events.append(bytes(buffer[start + len(_DATA) : end]))
            start = end + len(_EVENT_END)
        del buffer[:start]

    def on_message_complete(self) -> None:
        self.complete = True
        if not self._parser.should_keep_alive():
            self.lost = ConnectionResetError("Triton closes the connection after this response")


def request_body(
    raw: bytes,
    images: Sequence[bytes] = (),
    video_frames: Sequence[bytes] = (),
    frame_counts: Sequence[int] = (),
) -> bytes:
    """The generate request's JSON: one key per input tensor, media base64-encoded.

    msgspec writes ``bytes`` as base64 itself, in one pass over each image.
    """
    body: dict[str, object] = {contract.INPUT_REQUEST: raw.decode()}
    if images:
        body[contract.INPUT_IMAGES] = images
    if frame_counts:
        body[contract.INPUT_VIDEO_FRAMES] = video_frames
        body[contract.INPUT_VIDEO_FRAME_COUNTS] = frame_counts
    if images or frame_counts:
        body["parameters"] = {contract.MEDIA_ENCODING_PARAMETER: contract.MEDIA_BASE64}
    return msgspec.json.encode(body)


class TritonHttpBackend(TritonStreams):
    """Keep-alive HTTP connections to one Triton server, shared by this worker's requests."""

    def __init__(self, settings: Settings, url: str) -> None:
        super().__init__(settings, url)
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// Triton URL: {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._idle: list[Connection] = []

    async def open(self) -> None:
        """Nothing to do: connections are made when requests need them."""

    async def close(self) -> None:
        """Close the idle connections."""
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    @property
    def idle_streams(self) -> int:
        """Connections whose last request has ended, kept open for the next ones."""
        return len(self._idle)

    async def ready(self, triton_model: str) -> bool:
        """True when Triton answers and ``triton_model`` is ready."""
        head = f"GET /v2/models/{triton_model}/ready HTTP/1.1\r\n".encode() + self._host_header
        connection = None
        try:
            async with asyncio.timeout(self.settings.triton_health_timeout_s):
                connection = await self._connection()
                connection.send(head + b"\r\n", b"")
                ready = await connection.head() == 200
                await connection.body()
        except (OSError, TimeoutError):
            return False
        finally:
            if connection is not None:
                self._keep(connection)  # closed unless its response was read to the end
        return ready

    async def responses(
        self,
        triton_model: str,
        raw: bytes,
        images: Sequence[bytes] = (),
        video_frames: Sequence[bytes] = (),
        frame_counts: Sequence[int] = (),
    ) -> AsyncGenerator[ModelResponse, None]:
        """The responses to one request on a connection of its own, to the end of its stream."""
        body = request_body(raw, images, video_frames, frame_counts)
        head = (
            f"POST /v2/models/{triton_model}/generate_stream HTTP/1.1\r\n".encode()
            + self._host_header
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        try:
            connection = await self._connection()
        except (OSError, TimeoutError) as exc:
            raise self.unavailable("Triton is unreachable") from exc
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            connection.lost = self.timeout()
            connection.close()

        deadline = asyncio.get_running_loop().call_later(
            self.settings.triton_request_timeout_s, time_out
        )
        try:
            connection.send(head, body)
            status = await connection.head()
            if status != 200:
                raise self._http_error(status, await connection.body())
            while (event := await connection.event()) is not None:
                response = _decode_response(event)
                if response.error is not None:
                    raise self.model_error(response.error)
                yield response
        except ApiError:
            raise
        except (OSError, msgspec.DecodeError) as exc:
            raise (
                self.timeout() if timed_out else self.unavailable("its connection to Triton broke")
            ) from exc
        finally:
            deadline.cancel()
            # Read to its end, the connection takes the next request; otherwise (the caller
            # left early, a timeout, an error event) closing it is what makes Triton cancel.
            self._keep(connection)

    async def _connection(self) -> Connection:
        """An idle connection that is still open, or a new one.

        Connecting takes at most ``triton_health_timeout_s`` (TimeoutError); taking an idle
        one needs no timer.
        """
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
        async with asyncio.timeout(self.settings.triton_health_timeout_s):
            _, connection = await asyncio.get_running_loop().create_connection(
                Connection, self.host, self.port
            )
        return connection

    def _keep(self, connection: Connection) -> None:
        if connection.usable and connection.complete and len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(connection)
        else:
            connection.close()

    def _http_error(self, status: int, body: bytes) -> ApiError:
        """What a refused generate request means: the model's error, or Triton's own."""
        try:
            message = _decode_error(body.removeprefix(_DATA).strip()).error
        except msgspec.DecodeError:
            message = ""
        if status >= 500 or not message:
            return self.unavailable(f"Triton answered HTTP {status}")
        return self.model_error(message)
