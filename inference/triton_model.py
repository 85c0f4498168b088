"""Triton Python-backend model ``vlm``: the contract's tensors in, an engine's stream out.

``inference/model_repository/vlm/1/model.py`` only imports :class:`TritonPythonModel` from here.
The model is decoupled: ``execute`` hands each request to a worker thread and returns at
once, and each thread streams its own responses, so one instance serves several requests
at a time. Generation stops within a token of the client cancelling.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import numpy as np
import triton_python_backend_utils as pb_utils

from inference import contract
from inference.contract import DescribeRequest, GenerateRequest
from inference.engines import Engine, Hooks, RequestError, load_engine
from inference.media import decode_media

log = logging.getLogger("visiongate.inference")


def _parameters(model_config: dict[str, Any]) -> dict[str, str]:
    raw = model_config.get("parameters", {})
    return {key: value.get("string_value", "") for key, value in raw.items()}


def _bytes_list(request: Any, name: str) -> list[bytes]:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return []
    return [bytes(item) for item in tensor.as_numpy().reshape(-1)]


def _media_list(request: Any, name: str) -> list[bytes]:
    """An images or video-frames tensor's elements, base64-decoded when the request says so."""
    values = _bytes_list(request, name)
    encoding = json.loads(request.parameters() or "{}").get(contract.MEDIA_ENCODING_PARAMETER)
    if encoding is None:
        return values
    if encoding != contract.MEDIA_BASE64:
        raise RequestError(f"unknown {contract.MEDIA_ENCODING_PARAMETER} {encoding!r}")
    try:
        return [binascii.a2b_base64(value, strict_mode=True) for value in values]
    except binascii.Error as exc:
        raise RequestError(f"input '{name}' is not valid base64: {exc}") from exc


def _int_list(request: Any, name: str) -> list[int]:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return [] if tensor is None else [int(v) for v in tensor.as_numpy().reshape(-1)]


def _bytes_tensor(name: str, value: bytes) -> Any:
    return pb_utils.Tensor(name, np.array([value], dtype=np.object_))


def _int_tensor(name: str, value: int) -> Any:
    return pb_utils.Tensor(name, np.array([value], dtype=np.int32))


class _Metrics:
    """Triton metrics of the model: tokens, finished and cancelled requests, requests in flight."""

    def __init__(self, model: str) -> None:
        labels = {"model": model}
        counter, gauge = pb_utils.MetricFamily.COUNTER, pb_utils.MetricFamily.GAUGE
        # Triton requires each family to outlive its metrics, so the families are kept here.
        self.families = [
            pb_utils.MetricFamily(name=name, description=text, kind=kind)
            for name, text, kind in (
                ("vlm_generated_tokens_total", "Tokens generated", counter),
                ("vlm_cancelled_requests_total", "Requests the client cancelled", counter),
                ("vlm_completed_requests_total", "Requests generated to the end", counter),
                ("vlm_requests_in_flight", "Requests generating now", gauge),
            )
        ]
        self.tokens, self.cancelled, self.completed, self.in_flight = (
            f.Metric(labels=labels) for f in self.families
        )
        # The backend's metric calls are not thread-safe: concurrent increments from request
        # threads crash tritonserver (SIGSEGV in libtriton_python.so). One lock for all of them.
        self._lock = threading.Lock()

    def started(self) -> None:
        """A request began generating."""
        with self._lock:
            self.in_flight.increment(1)

    def close(self) -> None:
        """Drop the metrics, then their families: Triton wants them released in that order."""
        with self._lock:
            del self.tokens, self.cancelled, self.completed, self.in_flight
            self.families.clear()

    def finished(self, tokens: int, outcome: str) -> None:
        """Count one request that ended (``completed``, ``cancelled`` or ``failed``)."""
        with self._lock:
            self.in_flight.increment(-1)
            self.tokens.increment(tokens)
            if outcome == "completed":
                self.completed.increment(1)
            elif outcome == "cancelled":
                self.cancelled.increment(1)


class TritonPythonModel:
    """The ``vlm`` model: one engine, a pool of request threads."""

    engine: Engine

    def initialize(self, args: dict[str, Any]) -> None:
        """Load the engine named by the config's parameters."""
        logging.basicConfig(level=os.environ.get("VISIONGATE_LOG_LEVEL", "INFO"))
        params = _parameters(json.loads(args["model_config"]))
        model_path = os.environ.get("VISIONGATE_MODEL_PATH") or params.get("model_path", "")
        engine = os.environ.get("VISIONGATE_ENGINE") or params.get("engine", "transformers")
        device = params.get("device", "auto")
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        tool_parser = params.get("tool_parser", "hermes")
        max_tool_calls = int(params.get("max_tool_calls", "4"))
        self.engine = load_engine(engine, model_path, device, tool_parser, max_tool_calls)
        self.capabilities = contract.encode_capabilities(self.engine.capabilities)
        workers = int(params.get("max_concurrent_requests", "4"))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlm-request")
        self.metrics = _Metrics(self.engine.capabilities.model)
        log.info("vlm ready: %s", self.capabilities.decode())

    def execute(self, requests: list[Any]) -> None:
        """Start each request on a worker thread; responses flow through its sender."""
        for request in requests:
            self.pool.submit(self._serve, request)

    def finalize(self) -> None:
        """Let running requests finish, then release the threads and the metrics."""
        self.pool.shutdown(wait=True)
        self.metrics.close()

    def _serve(self, request: Any) -> None:
        sender = request.get_response_sender()
        try:
            self._answer(request, sender)
        except RequestError as exc:
            refusal = contract.Refusal(exc.message, param=exc.param, code=exc.code)
            self._fail(sender, contract.encode_refusal(refusal))
        except Exception as exc:
            log.exception("request failed")
            self._fail(sender, f"internal error in the vlm model: {type(exc).__name__}: {exc}")

    @staticmethod
    def _fail(sender: Any, message: str) -> None:
        try:
            response = pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
            sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        except Exception:  # the client is gone; nobody is left to tell
            log.info("could not deliver error to a departed client: %s", message)

    def _answer(self, request: Any, sender: Any) -> None:
        raw = _bytes_list(request, contract.INPUT_REQUEST)
        if len(raw) != 1:
            raise RequestError(
                f"input '{contract.INPUT_REQUEST}' must hold exactly one JSON document"
            )
        try:
            parsed = contract.decode_request(raw[0])
        except msgspec.DecodeError as exc:
            raise RequestError(
                f"input '{contract.INPUT_REQUEST}' is not a valid request: {exc}"
            ) from exc
        if isinstance(parsed, DescribeRequest):
            out = _bytes_tensor(contract.OUTPUT_CAPABILITIES, self.capabilities)
            sender.send(
                pb_utils.InferenceResponse(output_tensors=[out]),
                flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
            )
            return
        self._generate(request, sender, parsed)

    def _generate(self, request: Any, sender: Any, parsed: GenerateRequest) -> None:
        media = decode_media(
            _media_list(request, contract.INPUT_IMAGES),
            _media_list(request, contract.INPUT_VIDEO_FRAMES),
            _int_list(request, contract.INPUT_VIDEO_FRAME_COUNTS),
        )
        state = {"cancelled": False, "generating": False}
        logprobs: list[bytes] = []  # the logprobs output of the next delta

        def cancelled() -> bool:
            if not state["cancelled"] and sender.is_cancelled():
                state["cancelled"] = True
            return state["cancelled"]

        def emit(text: str) -> None:
            if not cancelled():
                outs = [_bytes_tensor(contract.OUTPUT_TEXT_DELTA, text.encode())]
                if logprobs:
                    outs.append(_bytes_tensor(contract.OUTPUT_LOGPROBS, logprobs.pop()))
                sender.send(pb_utils.InferenceResponse(output_tensors=outs))

        def token_logprobs(tokens: list[contract.TokenLogprob]) -> None:
            logprobs[:] = [contract.encode_logprobs(tokens)]

        def prefilled(prompt_tokens: int) -> None:
            # The gateway charges a prompt the model took even if its client leaves now.
            if not cancelled():
                out = _int_tensor(contract.OUTPUT_PROMPT_TOKENS, prompt_tokens)
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))

        def on_token() -> None:
            # The first token: an empty delta tells the gateway, even if its text is diverted.
            if not state["generating"] and not cancelled():
                state["generating"] = True
                out = _bytes_tensor(contract.OUTPUT_TEXT_DELTA, b"")
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))

        hooks = Hooks(
            emit=emit,
            cancelled=cancelled,
            on_token=on_token,
            prefilled=prefilled,
            logprobs=token_logprobs,
        )
        self.metrics.started()
        try:
            final = self.engine.generate(parsed, media, hooks)
        except BaseException:
            self.metrics.finished(0, "failed")
            raise
        if state["cancelled"]:
            self.metrics.finished(final.completion_tokens, "cancelled")
            log.info("cancelled after %d generated tokens", final.completion_tokens)
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        self.metrics.finished(final.completion_tokens, "completed")
        outputs = [
            _bytes_tensor(contract.OUTPUT_TEXT_DELTA, b""),
            _bytes_tensor(contract.OUTPUT_FINISH_REASON, final.finish_reason.encode()),
            _int_tensor(contract.OUTPUT_PROMPT_TOKENS, final.prompt_tokens),
            _int_tensor(contract.OUTPUT_COMPLETION_TOKENS, final.completion_tokens),
            _bytes_tensor(contract.OUTPUT_TOOL_CALLS, msgspec.json.encode(final.tool_calls)),
        ]
        sender.send(
            pb_utils.InferenceResponse(output_tensors=outputs),
            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
        )
