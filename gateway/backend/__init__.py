"""The model backend: Triton over gRPC, one server or several."""

from gateway.backend.pool import TritonPool, triton_urls
from gateway.backend.triton import TritonBackend

__all__ = ["TritonBackend", "TritonPool", "triton_urls"]
