"""Spans and metrics of real requests, read from in-memory OpenTelemetry exporters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import create_app
from gateway.settings import Settings
from gateway.telemetry import Telemetry
from gateway.triton_process import EmbeddedTriton
from tests.support.chat import chat_body, image_message


@dataclass
class Instrumented:
    client: AsyncTestClient  # type: ignore[type-arg]
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    headers: dict[str, str]
    api_key: str
    triton_url: str


@pytest.fixture(scope="module")
async def app(triton: EmbeddedTriton, api_key: str) -> AsyncIterator[Instrumented]:
    """The gateway built in-process, in front of the real Triton, with in-memory exporters."""
    settings = Settings(triton_url=triton.http_url)
    spans, metrics = InMemorySpanExporter(), InMemoryMetricReader()
    telemetry = Telemetry(settings, span_exporters=[spans], metric_readers=[metrics])
    async with AsyncTestClient(create_app(settings, telemetry)) as client:
        yield Instrumented(
            client, spans, metrics, {"authorization": f"Bearer {api_key}"}, api_key, triton.http_url
        )


def _points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, object], object]]:
    data = reader.get_metrics_data()
    assert data is not None
    found = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
    return found


async def test_a_request_has_a_server_span_with_genai_attributes_and_stage_children(
    app: Instrumented,
) -> None:
    app.spans.clear()
    body = chat_body(max_tokens=5)
    body["messages"] = [image_message("describe it", seed=3)]
    response = await app.client.post("/v1/chat/completions", json=body, headers=app.headers)
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    assert request_id == response.json()["x_groq"]["id"]
    usage = response.json()["usage"]

    spans = app.spans.get_finished_spans()
    server = [s for s in spans if s.name == "POST /v1/chat/completions"]
    assert len(server) == 1
    attrs = dict(server[0].attributes or {})
    assert attrs["gen_ai.request.model"] == "visiongate/tiny-vlm"
    assert attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attrs["gen_ai.server.time_to_first_token"] > 0
    assert attrs["visiongate.organization"] == "tests"
    assert attrs["visiongate.tier"] == "enterprise"
    assert attrs["http.response.status_code"] == 200
    assert attrs["visiongate.request_id"] == request_id
    children = {s.name: s for s in spans if s.parent is not None}
    for name in ("visiongate.auth", "visiongate.limits", "visiongate.media", "triton.generate"):
        assert name in children, sorted(children)
        assert children[name].parent.span_id == server[0].context.span_id  # type: ignore[union-attr]
    triton_attrs = dict(children["triton.generate"].attributes or {})
    assert triton_attrs["server.address"] == app.triton_url
    # Never the key, in any attribute of any span.
    for span in spans:
        assert app.api_key not in repr(dict(span.attributes or {}))


async def test_metrics_count_requests_tokens_ttft_and_rejections(app: Instrumented) -> None:
    ok = await app.client.post(
        "/v1/chat/completions", json=chat_body(max_tokens=4, stream=True), headers=app.headers
    )
    assert ok.status_code == 200
    too_many = chat_body()
    too_many["messages"] = [
        {"role": "user", "content": [image_message(seed=i)["content"][1] for i in range(6)]}  # type: ignore[index]
    ]
    rejected = await app.client.post("/v1/chat/completions", json=too_many, headers=app.headers)
    assert rejected.status_code == 400
    unauthorized = await app.client.post(
        "/v1/chat/completions", json=chat_body(), headers={"authorization": "Bearer vg_nope"}
    )
    assert unauthorized.status_code == 401

    requests = _points(app.metrics, "visiongate.requests")
    by_status = {
        (a["status"], a["model"], a["tier"]): p.value  # type: ignore[attr-defined]
        for a, p in requests
        if a["route"] == "/v1/chat/completions"
    }
    assert by_status[("200", "visiongate/tiny-vlm", "enterprise")] >= 1
    assert by_status[("400", "visiongate/tiny-vlm", "enterprise")] >= 1
    assert by_status[("401", "", "")] >= 1
    tokens = {a["type"]: p.value for a, p in _points(app.metrics, "visiongate.tokens")}  # type: ignore[attr-defined]
    assert tokens["input"] > 0 and tokens["output"] > 0
    ttft = _points(app.metrics, "gen_ai.server.time_to_first_token")
    assert sum(p.count for _, p in ttft) >= 1  # type: ignore[attr-defined]
    media = {a["rule"]: p.value for a, p in _points(app.metrics, "visiongate.media.rejections")}  # type: ignore[attr-defined]
    assert media.get("too_many_images", 0) >= 1, media


async def test_request_id_is_echoed_when_well_formed_and_replaced_otherwise(
    app: Instrumented,
) -> None:
    sent = await app.client.get("/v1/models", headers={**app.headers, "x-request-id": "abc-123"})
    assert sent.headers["x-request-id"] == "abc-123"
    odd = await app.client.get("/v1/models", headers={**app.headers, "x-request-id": "a b\tc"})
    assert odd.headers["x-request-id"].startswith("req_")
