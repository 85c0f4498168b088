"""Traces, metrics and logs: OpenTelemetry, Prometheus at ``/metrics``, JSON log lines."""

from gateway.telemetry.context import RequestInfo, current_request
from gateway.telemetry.setup import Telemetry

__all__ = ["RequestInfo", "Telemetry", "current_request"]
