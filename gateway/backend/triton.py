"""Triton over gRPC: one channel per worker process, one request per stream.

Chosen by a Triton URL without ``http://`` (``host:port`` or ``grpc://host:port``); the
HTTP transport (:mod:`gateway.backend.triton_http`) costs the gateway less CPU per request.
A request is one request on a ``ModelStreamInfer`` stream. Its end is the response whose
``triton_final_response`` parameter is true; that response may carry no outputs. A stream
carries one request at a time and, once that request has ended, is kept for the next one:
opening a gRPC call for every request cost the gateway 0.1–0.25 ms more CPU per request on
a 2-core machine, and Triton cancels whole streams, so a stream shared by concurrent
requests could not stop one of them. Leaving the stream early (the client disconnected),
an error or the request's timeout cancels the stream, and Triton then tells the model
(``is_cancelled()``), which stops generating.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from itertools import chain
from typing import Any

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from gateway.backend.stream import ModelResponse, TritonStreams
from gateway.errors import ApiError
from gateway.settings import Settings
from inference import contract

log = logging.getLogger("visiongate.backend")

_INT32_MAX = 2**31 - 1
# Idle streams kept for reuse; beyond this many (after a burst) a finished one is closed.
MAX_IDLE_STREAMS = 64
_SERVICE = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
_STREAM_INFER = f"/{_SERVICE.full_name}/ModelStreamInfer"


def _tensor(name: str, count: int) -> service_pb2.ModelInferRequest.InferInputTensor:
    return service_pb2.ModelInferRequest.InferInputTensor(
        name=name, datatype=contract.DTYPES[name], shape=[count]
    )


def _bytes_contents(values: Sequence[bytes]) -> bytes:
    """A BYTES tensor's raw contents: each element as a 4-byte little-endian length, then it."""
    return b"".join(chain.from_iterable((len(v).to_bytes(4, "little"), v) for v in values))


def build_request(
    triton_model: str,
    request: bytes,
    images: Sequence[bytes] = (),
    video_frames: Sequence[bytes] = (),
    frame_counts: Sequence[int] = (),
) -> service_pb2.ModelInferRequest:
    """The gRPC request carrying the contract's input tensors.

    Built as the protobuf message directly, the raw contents joined once: tritonclient's
    ``InferInput`` would go through numpy object arrays and copy each image twice more.
    """
    tensors = [_tensor(contract.INPUT_REQUEST, 1)]
    contents = [_bytes_contents([request])]
    if images:
        tensors.append(_tensor(contract.INPUT_IMAGES, len(images)))
        contents.append(_bytes_contents(images))
    if frame_counts:
        tensors.append(_tensor(contract.INPUT_VIDEO_FRAMES, len(video_frames)))
        contents.append(_bytes_contents(video_frames))
        tensors.append(_tensor(contract.INPUT_VIDEO_FRAME_COUNTS, len(frame_counts)))
        contents.append(b"".join(n.to_bytes(4, "little", signed=True) for n in frame_counts))
    return service_pb2.ModelInferRequest(
        model_name=triton_model, inputs=tensors, raw_input_contents=contents
    )


def _response(response: Any) -> ModelResponse:
    """The outputs of one response, each the first element of its tensor.

    Every output of the contract has one element, so the raw contents are read directly
    (a BYTES element is a 4-byte length then the bytes; INT32 is 4 little-endian bytes):
    this is several times cheaper than building numpy arrays for each response.
    """
    found: dict[str, Any] = {}
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        if output.datatype == "BYTES":
            size = int.from_bytes(raw[:4], "little")
            found[output.name] = raw[4 : 4 + size].decode("utf-8", errors="replace")
        else:
            found[output.name] = int.from_bytes(raw[:4], "little", signed=True)
    return ModelResponse(**found)


class TritonBackend(TritonStreams):
    """One gRPC channel to a Triton server, shared by every request of this worker process.

    It speaks Triton's gRPC service through the stub tritonclient generates, without
    tritonclient's client wrapper: that wrapper's per-request conversions (dicts of
    ``InferInput``, a request-iterator task, ``InferResult`` objects) cost more CPU than the
    gateway's whole budget for a request.
    """

    def __init__(self, settings: Settings, url: str) -> None:
        super().__init__(settings, url.removeprefix("grpc://"))
        self._channel: grpc.aio.Channel | None = None
        self._stub: service_pb2_grpc.GRPCInferenceServiceStub | None = None
        self._stream_infer: grpc.aio.StreamStreamMultiCallable | None = None
        self._idle: list[grpc.aio.StreamStreamCall] = []

    async def open(self) -> None:
        """Create the channel (lazily connected); call inside the worker's event loop."""
        backoff = self.settings.triton_reconnect_backoff_max_ms
        self._channel = grpc.aio.insecure_channel(
            self.url,
            options=[
                ("grpc.max_send_message_length", _INT32_MAX),
                ("grpc.max_receive_message_length", _INT32_MAX),
                # gRPC's default reconnect backoff grows to 120 s; a restarted Triton should
                # be noticed within about a second.
                ("grpc.initial_reconnect_backoff_ms", min(100, backoff)),
                ("grpc.min_reconnect_backoff_ms", min(100, backoff)),
                ("grpc.max_reconnect_backoff_ms", backoff),
            ],
        )
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._stream_infer = self._channel.stream_stream(
            _STREAM_INFER,
            request_serializer=service_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=service_pb2.ModelStreamInferResponse.FromString,
            _registered_method=True,
        )

    async def close(self) -> None:
        """Close the channel."""
        for call in self._idle:
            call.cancel()
        self._idle.clear()
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub, self._stream_infer = None, None, None

    @property
    def idle_streams(self) -> int:
        """Streams whose last request has ended, kept open for the next ones."""
        return len(self._idle)

    @property
    def stub(self) -> service_pb2_grpc.GRPCInferenceServiceStub:
        """The open channel's service stub."""
        if self._stub is None:
            raise RuntimeError("TritonBackend.open() was not called")
        return self._stub

    async def ready(self, triton_model: str) -> bool:
        """True when Triton answers and ``triton_model`` is ready."""
        timeout = self.settings.triton_health_timeout_s
        request = service_pb2.ModelReadyRequest(name=triton_model)
        try:
            return bool((await self.stub.ModelReady(request, timeout=timeout)).ready)
        except grpc.aio.AioRpcError:
            return False

    async def responses(
        self,
        triton_model: str,
        raw: bytes,
        images: Sequence[bytes] = (),
        video_frames: Sequence[bytes] = (),
        frame_counts: Sequence[int] = (),
    ) -> AsyncGenerator[ModelResponse, None]:
        """The responses to one request on a stream of its own, up to the final one."""
        request = build_request(triton_model, raw, images, video_frames, frame_counts)
        call = self._idle_stream()
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            call.cancel()

        deadline = asyncio.get_running_loop().call_later(
            self.settings.triton_request_timeout_s, time_out
        )
        got_final = False
        try:
            await call.write(request)
            while (streamed := await call.read()) is not grpc.aio.EOF:
                if streamed.error_message:
                    raise self.model_error(streamed.error_message)
                response = streamed.infer_response
                yield _response(response)
                flag = response.parameters.get(contract.FINAL_RESPONSE_PARAMETER)
                if flag is not None and flag.bool_param:
                    got_final = True
                    break
        except grpc.aio.AioRpcError as exc:
            raise self._rpc_error(exc) from exc
        except asyncio.CancelledError:
            # The deadline cancelled the stream; or else this task is being cancelled.
            task = asyncio.current_task()
            if timed_out and (task is None or not task.cancelling()):
                raise self.timeout() from None
            raise
        except asyncio.InvalidStateError:  # the stream had ended before the request was written
            raise self.timeout() if timed_out else self.unavailable("its stream closed") from None
        finally:
            deadline.cancel()
            # Its request over, the stream takes the next one; otherwise (the caller left
            # early, an error) cancelling it is what tells Triton, and the model, to stop.
            if got_final and len(self._idle) < MAX_IDLE_STREAMS:
                self._idle.append(call)
            else:
                call.cancel()
        if not got_final:
            raise self.unavailable("the stream from Triton ended without a final response")

    def _idle_stream(self) -> grpc.aio.StreamStreamCall:
        """A stream with no request on it: the last one kept that is still open, or a new one."""
        if self._stream_infer is None:
            raise RuntimeError("TritonBackend.open() was not called")
        while self._idle:
            call = self._idle.pop()
            if not call.done():  # a stream Triton ended (it restarted) is dropped
                return call
        return self._stream_infer()

    def _rpc_error(self, exc: grpc.aio.AioRpcError) -> ApiError:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return self.timeout()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return self.unavailable("Triton is unreachable")
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            return self.unavailable("the model is not ready")
        log.error("Triton stream failed: %s %s", code, exc.details())
        return self.unavailable(f"Triton answered {code.name}")
