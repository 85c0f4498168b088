"""HTTP limits at the server, over raw sockets against a real `visiongate serve`.

Header size (431, not buffered), header and body read timeouts, the idle timeout, the
connection cap (503), the announced body size (413), ``nosniff`` on every response, and a
non-JSON Content-Type (415). The timeouts are tested on a gateway of this module's own with
timeouts of a second; every wait for the server has a bound many times longer.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from gateway.triton_process import EmbeddedTriton
from tests.support.chat import MODEL
from tests.support.processes import GatewayProcess, start_gateway

CHAT = "/v1/chat/completions"
# Bounds on waiting for the server: far above the timeouts set below, for a loaded machine.
PATIENCE_S = 30.0
CAP = 4

Response = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module")
def quick(
    triton: EmbeddedTriton, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway whose read timeouts and idle timeout are one second."""
    log_path = tmp_path_factory.mktemp("quick-gateway") / "gateway.log"
    env = {
        "VISIONGATE_HEADER_TIMEOUT_S": "1",
        "VISIONGATE_BODY_TIMEOUT_S": "1",
        "VISIONGATE_KEEP_ALIVE_TIMEOUT_S": "1",
    }
    with start_gateway(triton.http_url, log_path, api_key, env) as process:
        yield process


@pytest.fixture(scope="module")
def capped(
    triton: EmbeddedTriton, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway that keeps at most CAP connections, idle ones for a minute."""
    log_path = tmp_path_factory.mktemp("capped-gateway") / "gateway.log"
    env = {
        "VISIONGATE_MAX_CONNECTIONS_PER_WORKER": str(CAP),
        "VISIONGATE_KEEP_ALIVE_TIMEOUT_S": "60",
    }
    with start_gateway(triton.http_url, log_path, api_key, env) as process:
        yield process


def connect(gateway: GatewayProcess) -> socket.socket:
    """A TCP connection to the gateway."""
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=PATIENCE_S)
    return sock


def head(path: str, *headers: str, method: str = "GET") -> bytes:
    """A request's head: its request line and headers, then the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket, reader: BinaryIO | None = None) -> Response:
    """One response read to the end of its Content-Length: status, headers, body.

    ``reader``: the connection's buffered reader, for several responses on one connection.
    """
    reader = reader or sock.makefile("rb")
    status_line = reader.readline()
    assert status_line, "closed before a response"
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes (True) or PATIENCE_S passes (False)."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def assert_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> str:
    """An OpenAI-shaped error with that status; its code."""
    assert status == expected, body
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return str(error["code"])


def vm_rss_kib(pid: int) -> int:
    """A process' resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_big_header(gateway: GatewayProcess, size: int) -> Response:
    """A request whose Authorization header is ``size`` bytes; the answer."""
    with connect(gateway) as sock:
        value = "Bearer " + "a" * size
        sock.sendall(head(CHAT, f"Authorization: {value}", "Content-Length: 0", method="POST"))
        return read_response(sock)


def test_a_header_over_the_limit_is_431_and_not_buffered(quick: GatewayProcess) -> None:
    send_big_header(quick, 100)  # warm: the first request allocates what every one needs
    before = vm_rss_kib(quick.process.pid)
    for size in (20 * 1024, 1024 * 1024, 16 * 1024 * 1024):
        status, headers, body = send_big_header(quick, size)
        assert assert_error(status, headers, body, 431) == "request_header_fields_too_large"
        assert headers["connection"] == "close"
    grown_kib = vm_rss_kib(quick.process.pid) - before
    assert grown_kib < 4 * 1024, f"RSS grew {grown_kib} KiB for 17 MiB of headers"


def test_a_header_within_the_limit_is_read(quick: GatewayProcess) -> None:
    status, headers, body = send_big_header(quick, 15 * 1024)
    assert assert_error(status, headers, body, 401) == "invalid_api_key"


def test_a_trickled_header_is_cut_off_after_the_header_timeout(quick: GatewayProcess) -> None:
    with connect(quick) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        deadline = time.monotonic() + PATIENCE_S
        sock.settimeout(0.2)
        answer = b""
        while time.monotonic() < deadline and not answer:
            try:
                sock.sendall(b"a")  # a byte at a time, never ending the header
                answer = sock.recv(65536)
            except TimeoutError:
                continue
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        sock.settimeout(PATIENCE_S)
        assert closed_by_server(sock)


def test_idle_connections_are_closed_after_the_idle_timeout(quick: GatewayProcess) -> None:
    with connect(quick) as never_used, connect(quick) as kept_alive:
        kept_alive.sendall(head("/healthz"))
        status, headers, _ = read_response(kept_alive)
        assert status == 200 and "connection" not in headers  # kept alive
        assert closed_by_server(never_used)
        assert closed_by_server(kept_alive)


def test_a_body_over_the_cap_is_413_at_its_announced_length(quick: GatewayProcess) -> None:
    with connect(quick) as sock:
        sock.sendall(
            head(
                CHAT,
                f"Authorization: Bearer {quick.api_key}",
                "Content-Type: application/json",
                f"Content-Length: {64 * 1024 * 1024}",  # over the 32 MiB default
                method="POST",
            )
        )
        # Answered without a byte of the body sent.
        status, headers, body = read_response(sock)
        assert assert_error(status, headers, body, 413) == "request_too_large"
        # A client that then trickles the body is cut off after the body timeout.
        sock.settimeout(0.2)
        deadline = time.monotonic() + PATIENCE_S
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b" ")
                closed = sock.recv(65536) == b""
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed


def test_a_trickled_body_is_cut_off_after_the_body_timeout(quick: GatewayProcess) -> None:
    with connect(quick) as sock:
        sock.sendall(
            head(
                CHAT,
                f"Authorization: Bearer {quick.api_key}",
                "Content-Type: application/json",
                "Content-Length: 100000",
                method="POST",
            )
        )
        sock.settimeout(0.2)
        deadline = time.monotonic() + PATIENCE_S
        sent = 0
        closed = False
        while time.monotonic() < deadline and not closed and sent < 100_000:
            try:
                sent += sock.send(b" ")
                closed = sock.recv(65536) == b""
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed, f"still open after {sent} bytes of body"
    # The gateway is still well.
    assert httpx.get(quick.url + "/healthz", timeout=PATIENCE_S).status_code == 200


def test_connections_beyond_the_cap_are_answered_503(capped: GatewayProcess) -> None:
    kept = [connect(capped) for _ in range(CAP)]
    try:
        for sock in kept:  # each is served, and stays open
            sock.sendall(head("/healthz"))
            assert read_response(sock)[0] == 200
        with connect(capped) as extra:  # answered at once, before it sends anything
            status, headers, body = read_response(extra)
            assert assert_error(status, headers, body, 503) == "too_many_connections"
            assert int(headers["retry-after"]) > 0
            assert closed_by_server(extra)
        kept.pop().close()
        # The freed place is taken by the next connection (once the server saw the close).
        deadline = time.monotonic() + PATIENCE_S
        while True:
            with connect(capped) as again:
                again.sendall(head("/healthz"))
                if read_response(again)[0] == 200:
                    break
            assert time.monotonic() < deadline, "the cap never freed a place"
            time.sleep(0.1)
    finally:
        for sock in kept:
            sock.close()


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=60) as client:
        yield client


def test_every_response_is_nosniff(http: httpx.Client, quick: GatewayProcess) -> None:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    responses = [
        http.post(CHAT, json=chat),
        http.post(CHAT, json={**chat, "stream": True}),
        http.post(CHAT, json=chat, headers={"authorization": "Bearer wrong"}),
        http.post(CHAT, json={**chat, "model": "no-such-model"}),
        http.get("/v1/nothing-here"),
        http.get("/playground"),
        http.get("/playground/static/playground.js"),
        http.get("/healthz"),
        http.get("/metrics"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 404, 404, 200, 200, 200, 200]
    assert responses[1].headers["content-type"].startswith("text/event-stream")
    for response in responses:
        assert response.headers.get("x-content-type-options") == "nosniff", response.url
    _, headers, _ = send_big_header(quick, 20 * 1024)  # the server's own refusals too
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_body_that_is_not_declared_json_is_415(http: httpx.Client, content_type: str) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})
    response = http.post(CHAT, content=body, headers={"content-type": content_type})
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type" in error["message"] and content_type in error["message"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/vnd.api+json", None],
)
def test_json_content_types_and_none_are_read(http: httpx.Client, content_type: str | None) -> None:
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    )
    request = http.build_request("POST", CHAT, content=body)
    if content_type is None:
        assert "content-type" not in request.headers
    else:
        request.headers["content-type"] = content_type
    response = http.send(request)
    assert response.status_code == 200, response.text


def test_pipelined_requests_are_each_answered(quick: GatewayProcess) -> None:
    with connect(quick) as sock:
        sock.sendall(head("/healthz") + head("/readyz") + head("/healthz"))
        reader = sock.makefile("rb")
        assert [read_response(sock, reader)[0] for _ in range(3)] == [200, 200, 200]
        assert closed_by_server(sock)  # then idle, until the idle timeout
