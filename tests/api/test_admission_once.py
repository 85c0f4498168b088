"""Admission finishes exactly once however a request ends: one usage record, slot freed.

The "tight" tier has one concurrency slot, so a request that did not free its slot makes
the next one a 429; each request's usage records are counted by its request id.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from tests.support.app import Api, call, usage_rows
from tests.support.chat import MODEL


def chat(**extra: Any) -> bytes:
    """A one-message chat body within the tight tier's tokens."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100}
    return json.dumps(body | extra).encode()


async def _next_is_admitted(api: Api) -> None:
    api.backend.hold = None
    response = await api.client.post(
        "/v1/chat/completions", content=chat(), headers=api.auth("tight")
    )
    assert response.status_code == 200, response.text


async def _left(api: Api, body: bytes) -> tuple[int, str]:
    """A client that leaves once the model took its prompt; its status and request id."""
    api.backend.hold = threading.Event()

    async def leave() -> None:
        while not api.backend.started.is_set():  # noqa: ASYNC110 (set on another loop)
            await asyncio.sleep(0.01)

    sent = await api.in_app_loop(lambda: call(api.app, body, api.keys["tight"], leave=leave))
    return sent.status, sent.headers["x-request-id"]


async def test_a_client_leaving_a_completion_is_recorded_once_and_frees_its_slot(
    api: Api,
) -> None:
    status, request_id = await _left(api, chat())
    assert status == 499
    (row,) = await usage_rows(api.database_url, request_id)
    # It left after the model's Prefill: the prompt is charged exactly, no completion.
    assert (row.status, row.prompt_tokens, row.prompt_estimated) == (
        "client_closed_request",
        7,
        False,
    )
    assert row.completion_tokens == 0
    assert api.backend.calls[0].closed  # the model's request was stopped
    await _next_is_admitted(api)


async def test_a_client_leaving_before_a_streams_first_token_is_recorded_once(
    api: Api,
) -> None:
    status, request_id = await _left(api, chat(stream=True))
    assert status == 499
    (row,) = await usage_rows(api.database_url, request_id)
    assert row.status == "client_closed_request"
    await _next_is_admitted(api)


async def test_a_refused_request_records_nothing_and_holds_no_slot(api: Api) -> None:
    response = await api.client.post(
        "/v1/chat/completions", content=chat(max_tokens=3_000), headers=api.auth("tight")
    )
    assert response.status_code == 413
    assert await usage_rows(api.database_url, response.headers["x-request-id"]) == []
    await _next_is_admitted(api)


async def test_a_media_error_after_admission_is_recorded_once(api: Api) -> None:
    content = [{"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}]
    body = chat(messages=[{"role": "user", "content": content}])
    response = await api.client.post(
        "/v1/chat/completions", content=body, headers=api.auth("tight")
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (
        "media_url_forbidden",
        "messages[0].content[0].image_url.url",
    )
    assert response.headers["x-ratelimit-limit-tokens"] == "2000"
    (row,) = await usage_rows(api.database_url, response.headers["x-request-id"])
    # Refused before it reached the model: nothing is charged.
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("media_url_forbidden", 0, 0)
    assert not api.backend.calls
    await _next_is_admitted(api)
