"""The model backend: Triton over gRPC, one server or several."""

from gateway.backend.interface import ModelBackend
from gateway.backend.pool import Restarted, TritonPool, triton_urls
from gateway.backend.triton import TritonBackend

__all__ = ["ModelBackend", "Restarted", "TritonBackend", "TritonPool", "triton_urls"]
