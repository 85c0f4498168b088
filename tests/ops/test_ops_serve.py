"""`visiongate serve` as operators see it: JSON logs without secrets, /metrics, x-request-id."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.chat import PROMPT_MARKER, chat_body
from tests.support.media import image_data_uri
from tests.support.processes import GatewayProcess


def test_logs_are_json_with_request_ids_and_never_keys_base64_or_prompts(
    gateway: GatewayProcess,
) -> None:
    image = image_data_uri(seed=11)
    body = chat_body(max_tokens=4)
    body["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"Describe {PROMPT_MARKER}"},
                {"type": "image_url", "image_url": {"url": image}},
            ],
        }
    ]
    ok = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=gateway.headers)
    assert ok.status_code == 200, ok.text
    # Errors are logged too: a refused key (its text in the header) and a broken image.
    wrong_key = gateway.api_key[:-4] + "AAAA"
    refused = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {wrong_key}"},
    )
    assert refused.status_code == 401
    broken = chat_body()
    broken["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": PROMPT_MARKER},
                {"type": "image_url", "image_url": {"url": image[:-400] + "!!!!"}},
            ],
        }
    ]
    bad = httpx.post(gateway.url + "/v1/chat/completions", json=broken, headers=gateway.headers)
    assert bad.status_code == 400

    log = gateway.log_path.read_text(errors="replace")
    base64_payload = image.split(",", 1)[1]
    for secret in (gateway.api_key, wrong_key, PROMPT_MARKER, base64_payload[:64]):
        assert secret not in log, f"{secret[:12]}... appears in the log"
    entries = []
    for line in log.splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    assert any(e["logger"] == "visiongate.app" for e in entries), log[-2000:]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)


def test_metrics_endpoint_is_prometheus_text_with_request_and_token_series(
    gateway: GatewayProcess,
) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=chat_body(max_tokens=3),
        headers={**gateway.headers, "x-request-id": "ops-metrics-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "ops-metrics-1"
    scraped = httpx.get(gateway.url + "/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    requests = [
        s
        for s in families["visiongate_requests"].samples
        if s.name == "visiongate_requests_total"
        and s.labels["route"] == "/v1/chat/completions"
        and s.labels["status"] == "200"
        and s.labels["tier"] == "enterprise"
    ]
    assert requests and requests[0].value >= 1
    tokens = {
        s.labels["type"]: s.value
        for s in families["visiongate_tokens"].samples
        if s.name == "visiongate_tokens_total"
    }
    assert tokens["input"] > 0 and tokens["output"] > 0
    assert "visiongate_request_duration_seconds" in families
    assert "visiongate_time_to_first_token_seconds" in families
    assert "visiongate_limiter_degraded_admissions" in families
    up = families["visiongate_triton_server_up"].samples
    assert [s.value for s in up] == [1.0]


def test_readyz_names_each_triton_server(gateway: GatewayProcess) -> None:
    ready = httpx.get(gateway.url + "/readyz").json()
    servers = ready["checks"]["triton"]["servers"]
    assert [(s["healthy"], s["detail"]) for s in servers] == [(True, "ok")]
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
