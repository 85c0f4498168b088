"""HTTP limits at the server: header size, read timeouts, idle keep-alive, connections per worker.

uvicorn's httptools protocol applies none of these, and its h11 protocol costs about four
times as much per request (bench/http_protocol_bench.py), so ``visiongate serve`` runs this
subclass of uvicorn's ``HttpToolsProtocol``. It counts a request's head (request line and
headers) as it is fed to the parser, and feeds at most ``max_header_bytes`` of it: a longer
head is answered 431 without being buffered. Each phase of a connection has a deadline:

- idle (new, or between requests): ``keep_alive_timeout_s``, then closed;
- a request's head, from its first byte: ``header_timeout_s``, then 408;
- its body, from when the application starts: ``body_timeout_s``, then closed (the
  application sees the client disconnect);
- none while the application works on a request whose body has arrived.

A deadline is a number per connection, set as the phase changes; one sweep per event loop,
every eighth of the shortest timeout, acts on those that have passed. That costs a fraction
of the timer uvicorn arms per request for its keep-alive, which this protocol does not arm.

A connection beyond ``max_connections_per_worker`` is answered 503 at once. A refusal's
response is followed by the end of the stream and the rest of what the client sends is read
and dropped until it closes or ``header_timeout_s`` is up, so that a client still sending
reads the answer instead of a reset connection. Bodies larger than
``max_request_body_bytes`` are refused by the application at their announced
``Content-Length`` (Litestar's ``request_max_body_size``), before any of them is read.

A pipelined request read in the same chunk as the end of the one before it is counted from
where it begins in the next read, so its head may exceed the limit by at most one read.
"""

from __future__ import annotations

import asyncio
import functools
import http
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from gateway.errors import ErrorBody, ErrorDetail
from gateway.settings import Settings

_ENCODE = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class HttpLimits:
    """The limits one worker enforces on every connection."""

    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float
    keep_alive_timeout_s: float
    max_connections: int
    retry_after_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        """The limits set in ``settings``."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            keep_alive_timeout_s=settings.keep_alive_timeout_s,
            max_connections=settings.max_connections_per_worker,
            retry_after_s=settings.retry_after_s,
        )

    @property
    def sweep_interval_s(self) -> float:
        """How often deadlines are checked: how late a connection may be cut off."""
        shortest = min(self.header_timeout_s, self.body_timeout_s, self.keep_alive_timeout_s)
        return min(shortest / 8, 1.0)


@functools.cache
def worker_limits() -> HttpLimits:
    """This worker's limits, from VISIONGATE_* as the worker's application reads its settings."""
    return HttpLimits.from_settings(Settings())


def error_response(
    status: int,
    message: str,
    type_: str,
    code: str,
    default_headers: list[tuple[bytes, bytes]],
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """A whole HTTP/1.1 response with an OpenAI-shaped error body, closing the connection."""
    body = _ENCODE(ErrorBody(ErrorDetail(message, type_, None, code)))
    phrase = http.HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}".encode()]
    headers = [
        *default_headers,
        *extra_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Sweeper:
    """The connections of one event loop, whose passed deadlines it acts on periodically."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float) -> None:
        self.loop = loop
        self.interval_s = interval_s
        self.connections: set[LimitedHttpToolsProtocol] = set()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, connection: LimitedHttpToolsProtocol) -> None:
        """Watch a connection; sweeping runs while there is one."""
        self.connections.add(connection)
        if self.timer is None:
            self.timer = self.loop.call_later(self.interval_s, self.sweep)

    def sweep(self) -> None:
        """Expire every connection whose deadline has passed."""
        now = self.loop.time()
        for connection in [c for c in self.connections if c.deadline <= now]:
            connection.expire()
        self.timer = None
        if self.connections:
            self.timer = self.loop.call_later(self.interval_s, self.sweep)


_SWEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sweeper]
_SWEEPERS = weakref.WeakKeyDictionary()

_NEVER = float("inf")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`HttpLimits` (module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = worker_limits()
        sweeper = _SWEEPERS.get(self.loop)
        if sweeper is None:
            sweeper = _SWEEPERS[self.loop] = Sweeper(self.loop, self.limits.sweep_interval_s)
        self.sweeper = sweeper
        # Bytes of the current request's head fed to the parser; None once it is complete.
        self.head_bytes: int | None = 0
        # When this phase of the connection ends (loop time), and what is done then.
        self.deadline = _NEVER
        self.on_deadline: Callable[[], None] = self._close
        self.refused = False  # answered and ending: what still arrives is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse a connection beyond the cap; otherwise it may stay idle until keep-alive."""
        super().connection_made(transport)
        self.sweeper.add(self)
        if len(self.connections) > self.limits.max_connections:
            self.logger.warning("Refused a connection: %d open.", len(self.connections) - 1)
            self._refuse(
                503,
                "This server has too many open connections; try again shortly.",
                "service_unavailable",
                "too_many_connections",
                ((b"retry-after", str(self.limits.retry_after_s).encode()),),
            )
            return
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection, then as uvicorn does."""
        self.sweeper.connections.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, a request's head at most up to the limit."""
        if self.refused:
            return
        limit = self.limits.max_header_bytes
        while data:
            if self.head_bytes is None:  # in a body: the application's caps apply
                chunk, data = data, b""
            elif self.head_bytes + len(data) <= limit:
                chunk, data = data, b""
                self.head_bytes += len(chunk)
            else:
                room = limit - self.head_bytes
                chunk, data = data[:room], data[room:]
                self.head_bytes = limit
            if chunk:
                super().data_received(chunk)
                if self.transport.is_closing():
                    return  # a parser error, answered 400
            if data and self.head_bytes is not None and self.head_bytes >= limit:
                self._refuse(
                    431,
                    f"The request line and headers may be at most {limit} bytes in all.",
                    "invalid_request_error",
                    "request_header_fields_too_large",
                )
                return

    def on_message_begin(self) -> None:
        """A request's first byte: its head must be complete within the header timeout."""
        super().on_message_begin()
        self._set_deadline(self.limits.header_timeout_s, self._header_timeout)

    def on_headers_complete(self) -> None:
        """The head is complete: no more counting, and no deadline until the app starts."""
        self.head_bytes = None
        self.deadline = _NEVER
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # The application starts now (a pipelined request only once the one before it is
        # answered): its body must arrive within the body timeout.
        super()._start_asgi_task(cycle, app)
        if cycle.more_body:
            self._set_deadline(self.limits.body_timeout_s, self._body_timeout)

    def on_message_complete(self) -> None:
        """The whole request has arrived: the next one's head is counted from zero."""
        self.head_bytes = 0
        self.deadline = _NEVER
        super().on_message_complete()
        if self.cycle.response_complete and not self.pipeline:
            self._idle()  # answered before its body had arrived (a 413, a 401)

    def on_response_complete(self) -> None:
        """uvicorn's, with the idle deadline for its keep-alive timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif not self.cycle.more_body:  # else the body's deadline still runs
            self._idle()

    def expire(self) -> None:
        """The phase's deadline has passed: act on it."""
        self.deadline = _NEVER
        if not self.transport.is_closing():
            self.on_deadline()

    def _set_deadline(self, delay_s: float, action: Callable[[], None]) -> None:
        self.deadline = self.loop.time() + delay_s
        self.on_deadline = action

    def _idle(self) -> None:
        self._set_deadline(self.limits.keep_alive_timeout_s, self._close)

    def _close(self) -> None:
        self.transport.close()

    def _header_timeout(self) -> None:
        self._refuse(
            408,
            f"The request's headers did not arrive within {self.limits.header_timeout_s} s.",
            "timeout_error",
            "request_timeout",
        )

    def _body_timeout(self) -> None:
        if self.cycle is not None and self.cycle.more_body:
            self.logger.info("Closed a connection: its request body was not read in time.")
            self.transport.close()

    def _refuse(
        self,
        status: int,
        message: str,
        type_: str,
        code: str,
        extra_headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        """Answer ``status``, end the stream, drop what still arrives, close at the deadline."""
        self.refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request's answer cannot be cut into
            return
        self.transport.write(
            error_response(
                status, message, type_, code, self.server_state.default_headers, extra_headers
            )
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._set_deadline(self.limits.header_timeout_s, self._close)
