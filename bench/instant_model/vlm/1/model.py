"""An instant ``vlm`` for the gateway benchmark: the contract's stream with no engine behind it.

A describe request gets capabilities like the tiny default model's. A generate request gets,
at once and from ``execute`` itself: a Prefill response (``prompt_tokens`` alone), then
``max_tokens`` one-character text deltas, then the final response with the finish reason
(``length``) and the counts. The prompt is counted as one token per four bytes of the request
JSON plus 64 per image; images and video frames are taken and not decoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from inference import contract

CAPABILITIES = contract.Capabilities(
    model="instant",
    engine="instant",
    vision=True,
    video="frames_as_images",
    tools=False,
    guided_decoding=False,
    context_length=32768,
    prompt_cost=contract.PromptCost(chars_per_token=4.0, message_tokens=4, base_tokens=2),
)
IMAGE_TOKENS = 64


def _bytes(name: str, value: bytes) -> Any:
    return pb_utils.Tensor(name, np.array([value], dtype=np.object_))


def _int(name: str, value: int) -> Any:
    return pb_utils.Tensor(name, np.array([value], dtype=np.int32))


def _count(request: Any, name: str) -> int:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return 0 if tensor is None else int(tensor.as_numpy().size)


class TritonPythonModel:
    """Answers every request inside ``execute``; nothing is generated."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Encode the describe answer once."""
        self.capabilities = contract.encode_capabilities(CAPABILITIES)

    def execute(self, requests: list[Any]) -> None:
        """Stream each request's whole answer now."""
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._answer(request, sender)
            except Exception as exc:
                sender.send(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                )

    def _answer(self, request: Any, sender: Any) -> None:
        raw = pb_utils.get_input_tensor_by_name(request, contract.INPUT_REQUEST).as_numpy()
        parsed = contract.decode_request(bytes(raw.reshape(-1)[0]))
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        if isinstance(parsed, contract.DescribeRequest):
            out = _bytes(contract.OUTPUT_CAPABILITIES, self.capabilities)
            sender.send(pb_utils.InferenceResponse(output_tensors=[out]), flags=final)
            return
        media = _count(request, contract.INPUT_IMAGES) + _count(
            request, contract.INPUT_VIDEO_FRAMES
        )
        prompt_tokens = len(raw.reshape(-1)[0]) // 4 + IMAGE_TOKENS * media
        prefill = _int(contract.OUTPUT_PROMPT_TOKENS, prompt_tokens)
        sender.send(pb_utils.InferenceResponse(output_tensors=[prefill]))
        for _ in range(parsed.max_tokens):
            delta = _bytes(contract.OUTPUT_TEXT_DELTA, b"x")
            sender.send(pb_utils.InferenceResponse(output_tensors=[delta]))
        outputs = [
            _bytes(contract.OUTPUT_TEXT_DELTA, b""),
            _bytes(contract.OUTPUT_FINISH_REASON, b"length"),
            _int(contract.OUTPUT_PROMPT_TOKENS, prompt_tokens),
            _int(contract.OUTPUT_COMPLETION_TOKENS, parsed.max_tokens),
            _bytes(contract.OUTPUT_TOOL_CALLS, b"[]"),
        ]
        sender.send(pb_utils.InferenceResponse(output_tensors=outputs), flags=final)
