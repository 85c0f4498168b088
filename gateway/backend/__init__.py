"""The model backend: Triton over gRPC."""

from gateway.backend.triton import TritonBackend

__all__ = ["TritonBackend"]
