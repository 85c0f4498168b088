"""The gateway's Triton client: one gRPC channel per worker process, one stream per request.

A request is a ``ModelStreamInfer`` call fed by an async generator of one request; its
responses become text deltas and, at the end, a :class:`~inference.contract.Final`. The end
is the response whose ``triton_final_response`` parameter is true; that response may carry
no outputs (the aio client cannot ask Triton to leave it out), so the last finish outputs
seen are kept. Leaving the stream early cancels the gRPC call, and Triton then tells the
model (``is_cancelled()``), which stops generating.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import grpc
import msgspec
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio
from tritonclient.utils import InferenceServerException

from gateway.errors import (
    ApiError,
    BackendTimeout,
    BackendUnavailable,
    InternalError,
    InvalidRequest,
)
from gateway.settings import Settings
from inference import contract

log = logging.getLogger("visiongate.backend")

# Messages of errors Triton itself raises when a model cannot take requests, as opposed to
# a model's own RequestError (the request's fault) or its internal error.
_UNAVAILABLE_MARKERS = ("unknown model", "is not found", "not ready", "has no available version")
_MODEL_INTERNAL = "internal error in the vlm model"
_INT32_MAX = 2**31 - 1


def _bytes_input(name: str, values: Sequence[bytes]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [len(values)], contract.DTYPES[name])
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_))
    return tensor


def build_inputs(
    request: bytes,
    images: Sequence[bytes] = (),
    video_frames: Sequence[bytes] = (),
    frame_counts: Sequence[int] = (),
) -> list[grpcclient.InferInput]:
    """The contract's input tensors for one request."""
    inputs = [_bytes_input(contract.INPUT_REQUEST, [request])]
    if images:
        inputs.append(_bytes_input(contract.INPUT_IMAGES, images))
    if frame_counts:
        inputs.append(_bytes_input(contract.INPUT_VIDEO_FRAMES, video_frames))
        counts = grpcclient.InferInput(
            contract.INPUT_VIDEO_FRAME_COUNTS, [len(frame_counts)], "INT32"
        )
        counts.set_data_from_numpy(np.array(frame_counts, dtype=np.int32))
        inputs.append(counts)
    return inputs


def _outputs(response: Any) -> dict[str, bytes]:
    """Output name → raw bytes of its first element.

    Every output of the contract has one element, so the raw contents are read directly
    (a BYTES element is a 4-byte length then the bytes; INT32 is 4 little-endian bytes):
    this is several times cheaper than building numpy arrays for each response.
    """
    found: dict[str, bytes] = {}
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        if output.datatype == "BYTES":
            size = int.from_bytes(raw[:4], "little")
            found[output.name] = raw[4 : 4 + size]
        else:
            found[output.name] = raw[:4]
    return found


def _int32(raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=True)


async def _one(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield request


class TritonBackend:
    """A tritonclient.grpc.aio client shared by every request of this worker process."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.url = url
        self.settings = settings
        self._client: aio.InferenceServerClient | None = None

    async def open(self) -> None:
        """Create the channel (lazily connected); call inside the worker's event loop."""
        backoff = self.settings.triton_reconnect_backoff_max_ms
        self._client = aio.InferenceServerClient(
            self.url,
            channel_args=[
                ("grpc.max_send_message_length", _INT32_MAX),
                ("grpc.max_receive_message_length", _INT32_MAX),
                # gRPC's default reconnect backoff grows to 120 s; a restarted Triton should
                # be noticed within about a second.
                ("grpc.initial_reconnect_backoff_ms", min(100, backoff)),
                ("grpc.min_reconnect_backoff_ms", min(100, backoff)),
                ("grpc.max_reconnect_backoff_ms", backoff),
            ],
        )

    async def close(self) -> None:
        """Close the channel."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> aio.InferenceServerClient:
        """The open client."""
        if self._client is None:
            raise RuntimeError("TritonBackend.open() was not called")
        return self._client

    def unavailable(self, why: str) -> BackendUnavailable:
        """A 503 telling the client when to retry."""
        return BackendUnavailable(
            f"The model backend is unavailable ({why}). Please retry shortly.",
            retry_after_s=self.settings.retry_after_s,
        )

    async def ready(self, triton_model: str) -> bool:
        """True when Triton answers and ``triton_model`` is ready."""
        timeout = self.settings.triton_health_timeout_s
        try:
            return bool(await self.client.is_model_ready(triton_model, client_timeout=timeout))
        except InferenceServerException:
            return False

    async def describe(self, triton_model: str) -> contract.Capabilities:
        """What the model says it can do."""
        raw = contract.encode_request(contract.DescribeRequest())
        async with aclosing(self._stream(triton_model, raw)) as items:
            async for item in items:
                if isinstance(item, bytes):
                    return contract.decode_capabilities(item)
        raise InternalError(f"model {triton_model} did not describe itself")

    async def generate(
        self,
        triton_model: str,
        request: contract.GenerateRequest,
        images: Sequence[bytes] = (),
        video_frames: Sequence[bytes] = (),
        frame_counts: Sequence[int] = (),
    ) -> AsyncGenerator[contract.Prefill | str | contract.Final, None]:
        """Stream the answer: a Prefill, text deltas, then one Final.

        Closing it early cancels the request. A model that does not report its prefill
        sends no Prefill.
        """
        raw = contract.encode_request(request)
        stream = self._stream(triton_model, raw, images, video_frames, frame_counts)
        # aclosing: when our consumer leaves, the inner stream closes now (and cancels the
        # call), not whenever the garbage collector finalizes it.
        async with aclosing(stream) as items:
            async for item in items:
                if isinstance(item, contract.Final):
                    yield item
                    return
                if isinstance(item, str | contract.Prefill):
                    yield item
        raise InternalError(f"model {triton_model} ended a stream without a finish reason")

    async def _stream(
        self,
        triton_model: str,
        raw: bytes,
        images: Sequence[bytes] = (),
        video_frames: Sequence[bytes] = (),
        frame_counts: Sequence[int] = (),
    ) -> AsyncGenerator[contract.Prefill | str | contract.Final | bytes, None]:
        """A Prefill, deltas and a Final, or (for a describe request) the capabilities JSON."""
        request = {
            "model_name": triton_model,
            "inputs": build_inputs(raw, images, video_frames, frame_counts),
        }
        try:
            call = self.client.stream_infer(
                _one(request), stream_timeout=self.settings.triton_request_timeout_s
            )
        except InferenceServerException as exc:
            raise self.unavailable(str(exc)) from exc
        got_final = False
        final: dict[str, bytes] = {}
        try:
            async for result, error in call:
                if error is not None:
                    raise self._model_error(str(error))
                response = result.get_response()
                outputs = _outputs(response)
                delta = outputs.get(contract.OUTPUT_TEXT_DELTA)
                if delta:
                    yield delta.decode("utf-8", errors="replace")
                if contract.OUTPUT_FINISH_REASON in outputs:
                    final = outputs
                elif contract.OUTPUT_PROMPT_TOKENS in outputs:
                    yield contract.Prefill(_int32(outputs[contract.OUTPUT_PROMPT_TOKENS]))
                if contract.OUTPUT_CAPABILITIES in outputs:
                    yield outputs[contract.OUTPUT_CAPABILITIES]
                flag = response.parameters.get(contract.FINAL_RESPONSE_PARAMETER)
                if flag is not None and flag.bool_param:
                    got_final = True
                    break
        except grpc.aio.AioRpcError as exc:
            raise self._rpc_error(exc) from exc
        finally:
            # A no-op once Triton has finished; if the caller left early (the HTTP client
            # disconnected) this is what tells Triton, and the model, to stop.
            call.cancel()
        if not got_final:
            raise self.unavailable("the stream from Triton ended without a final response")
        if final:
            yield contract.Final(
                finish_reason=final[contract.OUTPUT_FINISH_REASON].decode(),  # type: ignore[arg-type]
                prompt_tokens=_int32(final[contract.OUTPUT_PROMPT_TOKENS]),
                completion_tokens=_int32(final[contract.OUTPUT_COMPLETION_TOKENS]),
                tool_calls=msgspec.json.decode(final.get(contract.OUTPUT_TOOL_CALLS) or b"[]"),
            )

    def _model_error(self, message: str) -> ApiError:
        lowered = message.lower()
        if _MODEL_INTERNAL in lowered:
            log.error("model error: %s", message)
            return InternalError("The model failed while processing your request.")
        if any(marker in lowered for marker in _UNAVAILABLE_MARKERS):
            return self.unavailable("the model is not ready")
        return InvalidRequest(message)

    def _rpc_error(self, exc: grpc.aio.AioRpcError) -> ApiError:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return BackendTimeout("The model did not finish within the request timeout.")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return self.unavailable("Triton is unreachable")
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            return self.unavailable("the model is not ready")
        log.error("Triton stream failed: %s %s", code, exc.details())
        return self.unavailable(f"Triton answered {code.name}")
