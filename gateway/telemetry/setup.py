"""Tracer and meter providers, with the exporters the settings choose."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from gateway.settings import Settings
from gateway.telemetry.metrics import Metrics

T = TypeVar("T")


class Telemetry:
    """This process's tracer and instruments. ``none`` (the default) exports nothing."""

    def __init__(
        self,
        settings: Settings,
        *,
        span_exporters: Sequence[SpanExporter] = (),
        metric_readers: Sequence[MetricReader] = (),
    ) -> None:
        exporter = settings.telemetry_exporter
        span_processors: list[SpanProcessor] = [SimpleSpanProcessor(e) for e in span_exporters]
        readers = list(metric_readers)
        interval_ms = settings.telemetry_export_interval_s * 1000
        if exporter == "console":
            span_processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), interval_ms))
        elif exporter == "otlp":
            # Imported only when used; endpoint, headers and TLS also follow OTEL_EXPORTER_OTLP_*.
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            base = settings.otlp_endpoint.rstrip("/") if settings.otlp_endpoint else None
            span_processors.append(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None))
            )
            readers.append(
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None),
                    interval_ms,
                )
            )
        resource = Resource.create({"service.name": settings.otel_service_name})
        self._tracer_provider: TracerProvider | None = None
        self._meter_provider: MeterProvider | None = None
        if span_processors:
            self._tracer_provider = TracerProvider(resource=resource)
            for processor in span_processors:
                self._tracer_provider.add_span_processor(processor)
            self.tracer: trace.Tracer = self._tracer_provider.get_tracer("visiongate")
        else:
            # Nothing exports spans: the no-op tracer keeps the request path as cheap as before.
            self.tracer = trace.NoOpTracer()
        # Whether spans are recorded; if not, the request path starts none (not even no-ops).
        self.tracing = self._tracer_provider is not None
        if readers:
            self._meter_provider = MeterProvider(resource=resource, metric_readers=readers)
            meter = self._meter_provider.get_meter("visiongate")
        else:
            meter = NoOpMeterProvider().get_meter("visiongate")
        self.metrics = Metrics(meter)

    async def stage(self, name: str, work: Awaitable[T]) -> T:
        """Await one stage of a request inside a child span named ``name``."""
        if not self.tracing:
            return await work
        with self.tracer.start_as_current_span(name):
            return await work

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporters."""
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        if self._meter_provider is not None:
            self._meter_provider.shutdown()
