"""The playground in a real browser against the real gateway and Triton."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import FilePayload, Page, Request, expect

from gateway.triton_process import EmbeddedTriton
from tests.support.chat import MODEL
from tests.support.processes import GatewayProcess
from tests.support.triton_client import metric

# The first test may install chromium (tests/playground/conftest.py) before it starts.
pytestmark = pytest.mark.timeout(900)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
NUMBER = re.compile(r"^\d+$")
SECONDS = re.compile(r"^\d+\.\d\d s$")


def png(name: str, seed: int) -> FilePayload:
    """A small random PNG, as a file the page's file picker receives."""
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return {"name": name, "mimeType": "image/png", "buffer": buffer.getvalue()}


def use_key(page: Page, key: str) -> None:
    """Enter a key and wait for the model picker to fill from /v1/models."""
    page.fill("#api-key", key)
    page.click("#save-key")
    expect(page.locator("#model option")).to_have_count(1)
    expect(page.locator("#model")).to_have_value(MODEL)


def request_body(request: Request) -> dict[str, Any]:
    """The JSON body the page sent."""
    body = request.post_data_json
    assert isinstance(body, dict), request.post_data
    return body


def stat(page: Page, list_id: str, name: str) -> str:
    """The value shown next to ``name`` in the usage or rate-limit list."""
    return page.locator(f"#{list_id} dt:text-is('{name}') + dd").inner_text()


def test_page_and_assets_are_served_without_a_key(gateway: GatewayProcess) -> None:
    page = httpx.get(gateway.url + "/playground")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    for asset, media_type in [("playground.js", "javascript"), ("playground.css", "text/css")]:
        response = httpx.get(f"{gateway.url}/playground/static/{asset}")
        assert response.status_code == 200
        assert media_type in response.headers["content-type"]
    missing = httpx.get(gateway.url + "/playground/static/nothing.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_url"


def test_image_question_streams_an_answer_with_usage_and_headers(page: Page, free_key: str) -> None:
    use_key(page, free_key)
    # The default model knows only synthetic scenes, and the page says so, highlighted.
    expect(page.locator("#model-note")).to_contain_text("synthetic scenes of coloured shapes")
    expect(page.locator("#model-note")).to_have_class(re.compile(r"\bwarning\b"))
    page.fill("#system", "You describe pictures.")
    page.fill("#max-tokens", "24")
    page.set_input_files("#image-file", [png("cat.png", seed=1)])
    expect(page.locator("#attachments img")).to_have_count(1)
    page.fill("#prompt", "What is in this picture?")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.click("#send")
    body = request_body(sent.value)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert sent.value.headers["authorization"] == f"Bearer {free_key}"
    [system, user] = body["messages"]
    assert system == {"role": "system", "content": "You describe pictures."}
    assert user["content"][0] == {"type": "text", "text": "What is in this picture?"}
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")

    answer = page.locator("#log .assistant .content").first
    expect(answer).not_to_be_empty()
    expect(page.locator("#usage")).to_contain_text("finish reason")
    assert NUMBER.match(stat(page, "usage", "prompt tokens"))
    # Unseeded: the model may sample its end token before the 24-token budget runs out.
    completion = int(stat(page, "usage", "completion tokens"))
    finish = stat(page, "usage", "finish reason")
    assert 1 <= completion <= 24
    assert finish == "stop" or (finish == "length" and completion == 24)
    assert SECONDS.match(stat(page, "usage", "time to first token"))
    assert SECONDS.match(stat(page, "usage", "total time"))
    # Free tier: 1,000 requests a day, 30,000 tokens a minute (Groq's headers).
    assert stat(page, "ratelimit", "x-ratelimit-limit-requests") == "1000"
    assert stat(page, "ratelimit", "x-ratelimit-limit-tokens") == "30000"
    assert NUMBER.match(stat(page, "ratelimit", "x-ratelimit-remaining-requests"))
    expect(page.locator("#error")).to_be_hidden()

    # A second turn carries the first one, the answer included.
    page.fill("#prompt", "And the colours?")
    # The answer's head, however long a busy shared machine keeps it: what it says is the test.
    with page.expect_response("**/v1/chat/completions", timeout=90_000) as second:
        page.click("#send")
    assert second.value.status == 200, second.value.text()
    messages = request_body(second.value.request)["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == answer.inner_text()
    expect(page.locator("#log .assistant")).to_have_count(2)
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#usage")).to_contain_text("finish reason")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "playground.png", full_page=True)


def test_wrong_key_shows_the_401_message(page: Page) -> None:
    page.fill("#api-key", "vg_" + "x" * 43)
    page.click("#save-key")
    expect(page.locator("#error-title")).to_have_text(
        "HTTP 401 · invalid_request_error · invalid_api_key"
    )
    expect(page.locator("#error-message")).to_have_text("Invalid API Key")
    expect(page.locator("#model option")).to_have_count(0)


def test_sixth_image_shows_the_400_message(page: Page, free_key: str) -> None:
    use_key(page, free_key)
    page.set_input_files("#image-file", [png(f"{i}.png", seed=i) for i in range(6)])
    expect(page.locator("#attachments img")).to_have_count(6)
    page.fill("#prompt", "Compare them.")
    page.click("#send")
    expect(page.locator("#error-title")).to_contain_text("HTTP 400")
    expect(page.locator("#error-title")).to_contain_text("too_many_images")
    expect(page.locator("#error-message")).to_contain_text("at most 5 images")
    # The refused message is back in the composer, to be fixed and sent again.
    expect(page.locator("#attachments img")).to_have_count(6)
    expect(page.locator("#prompt")).to_have_value("Compare them.")
    expect(page.locator("#log .message")).to_have_count(0)


def test_invalid_tools_json_is_refused_before_sending(page: Page, free_key: str) -> None:
    use_key(page, free_key)
    page.fill("#tools", "[{not json")
    page.fill("#prompt", "Hi")
    page.click("#send")
    expect(page.locator("#error-title")).to_have_text("Not sent")
    expect(page.locator("#error-message")).to_contain_text("Tools: not valid JSON")


def test_stop_ends_the_stream_and_cancels_the_triton_request(
    page: Page, free_key: str, triton: EmbeddedTriton
) -> None:
    cancelled = metric(triton.metrics_url, "vlm_cancelled_requests_total")
    use_key(page, free_key)
    # Greedy decoding of "Hi" runs to the length limit: seconds of generation to interrupt.
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "3000")
    page.fill("#prompt", "Hi")
    page.click("#send")
    answer = page.locator("#log .assistant .content")
    expect(answer).not_to_be_empty()
    expect(page.locator("#stop")).to_be_enabled()
    page.click("#stop")
    expect(page.locator("#log .assistant .finish")).to_have_text("stopped")
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#stop")).to_be_disabled()
    deadline = time.monotonic() + 15
    while metric(triton.metrics_url, "vlm_cancelled_requests_total") <= cancelled:
        assert time.monotonic() < deadline, "Triton never counted a cancelled request"
        time.sleep(0.05)
    # Nothing arrives after the stop.
    text = answer.inner_text()
    time.sleep(0.5)  # a window in which nothing more may arrive
    assert answer.inner_text() == text


def test_429_shows_the_message_and_a_countdown(page: Page, one_rpm_key: str) -> None:
    use_key(page, one_rpm_key)
    page.fill("#max-tokens", "4")
    for prompt in ["one", "two"]:
        page.fill("#prompt", prompt)
        page.click("#send")
        expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#error-title")).to_have_text("HTTP 429 · requests · rate_limit_exceeded")
    expect(page.locator("#error-message")).to_contain_text("requests per minute (RPM)")
    retry_after = int(stat(page, "ratelimit", "retry-after"))
    assert retry_after > 0
    expect(page.locator("#retry")).to_have_text(re.compile(r"^Retry in \d+ s"))
    first = page.locator("#retry").inner_text()
    expect(page.locator("#retry")).not_to_have_text(first, timeout=3000)


WEATHER_TOOL = """[{"type": "function", "function": {"name": "get_weather",
  "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}},
                 "required": ["city"]}}}]"""


def sse(*chunks: dict[str, Any]) -> str:
    """A chat-completion stream as the gateway writes it."""
    events = [{"id": "chatcmpl-1", "object": "chat.completion.chunk", **c} for c in chunks]
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def test_tool_calls_in_the_stream_are_shown_and_kept(page: Page, free_key: str) -> None:
    # What the page shows of a streamed call is the page's to test, not the model's: this test
    # answers with a fixed stream of tool-call deltas in the API's shape.
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather"}}
    stream = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **call}]}}]},
        *(
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": f}]}}]}
            for f in [{"arguments": '{"city": '}, {"arguments": '"Paris"}'}]
        ),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 533, "completion_tokens": 95}},
    )
    use_key(page, free_key)
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(body=stream, content_type="text/event-stream"),
    )
    page.fill("#tools", WEATHER_TOOL)
    page.select_option("#tool-choice", "required")
    page.fill("#prompt", "Weather in Paris?")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.click("#send")
    body = request_body(sent.value)
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == "required"
    expect(page.locator("#log .assistant .tool-calls")).to_have_text(
        'tool call call_1: get_weather({"city": "Paris"})'
    )
    expect(page.locator("#usage")).to_contain_text("finish reason")
    assert stat(page, "usage", "finish reason") == "tool_calls"
    assert stat(page, "usage", "completion tokens") == "95"

    page.fill("#prompt", "Thanks.")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.click("#send")
    assistant = request_body(sent.value)["messages"][1]
    assert assistant["tool_calls"] == [
        {**call, "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]


def test_json_mode_and_a_video_url_are_sent_as_documented(page: Page, free_key: str) -> None:
    use_key(page, free_key)
    page.check("#json-mode")
    page.fill("#video-url", "file:///nowhere/clip.mp4")
    page.click("#add-video-url")
    page.fill("#video-fps", "2")
    page.fill("#video-max-frames", "4")
    page.fill("#prompt", "Describe the clip as JSON.")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.click("#send")
    body = request_body(sent.value)
    assert body["response_format"] == {"type": "json_object"}
    assert body["video_fps"] == 2
    assert body["video_max_frames"] == 4
    video = {"type": "video_url", "video_url": {"url": "file:///nowhere/clip.mp4"}}
    assert body["messages"][0]["content"][1] == video
    # No media root is configured, so the gateway refuses the file: shown as it said it.
    expect(page.locator("#error-title")).to_contain_text("HTTP 400")


DROP_AND_PASTE = """([dropped, pasted]) => {
  const file = (b64, name) =>
    new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, {type: "image/png"});
  const drop = new DataTransfer();
  drop.items.add(file(dropped, "dropped.png"));
  document.getElementById("composer").dispatchEvent(
    new DragEvent("drop", {dataTransfer: drop, bubbles: true, cancelable: true}));
  const paste = new DataTransfer();
  paste.items.add(file(pasted, "pasted.png"));
  document.getElementById("prompt").dispatchEvent(
    new ClipboardEvent("paste", {clipboardData: paste, bubbles: true, cancelable: true}));
}"""


def test_images_by_drop_paste_and_url(page: Page, free_key: str) -> None:
    use_key(page, free_key)
    files = [base64.b64encode(png("", seed)["buffer"]).decode() for seed in (7, 8)]
    page.evaluate(DROP_AND_PASTE, files)
    page.fill("#image-url", "https://images.example/cat.png")
    page.click("#add-image-url")
    page.set_input_files("#image-file", [png("removed.png", seed=9)])
    expect(page.locator("#attachments li")).to_have_count(4)
    page.click("#attachments li:last-child .remove")
    expect(page.locator("#attachments span")).to_have_text(
        ["dropped.png", "pasted.png", "https://images.example/cat.png"]
    )
    page.fill("#prompt", "Which is bigger?")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.click("#send")
    parts = request_body(sent.value)["messages"][0]["content"]
    urls = [part["image_url"]["url"] for part in parts[1:]]
    assert urls[0] == "data:image/png;base64," + files[0]
    assert urls[1] == "data:image/png;base64," + files[1]
    assert urls[2] == "https://images.example/cat.png"
