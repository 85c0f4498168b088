"""A minimal tritonclient.grpc.aio client for the vlm model, and Triton's counters."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio

from inference import contract


@dataclass
class Answer:
    """What one stream delivered."""

    deltas: list[str] = field(default_factory=list)
    # The prefill report, and how many deltas had arrived before it.
    prefill_tokens: int | None = None
    deltas_before_prefill: int | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: list[dict] = field(default_factory=list)
    capabilities: contract.Capabilities | None = None
    error: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def user(*parts: contract.Part | str) -> contract.Message:
    """A user message from text and media parts."""
    return contract.Message(
        role="user", content=[contract.TextPart(p) if isinstance(p, str) else p for p in parts]
    )


def build_inputs(
    request: bytes | None,
    images: Sequence[bytes] = (),
    video_frames: Sequence[bytes] = (),
    frame_counts: Sequence[int] = (),
) -> list[grpcclient.InferInput]:
    """The contract's input tensors; ``request=None`` leaves the request tensor out."""
    tensors: list[tuple[str, Sequence[bytes] | Sequence[int]]] = [
        (contract.INPUT_REQUEST, [request] if request is not None else []),
        (contract.INPUT_IMAGES, images),
        (contract.INPUT_VIDEO_FRAMES, video_frames if frame_counts else []),
        (contract.INPUT_VIDEO_FRAME_COUNTS, frame_counts),
    ]
    inputs = []
    for name, values in tensors:
        if values:
            tensor = grpcclient.InferInput(name, [len(values)], contract.DTYPES[name])
            dtype = np.int32 if contract.DTYPES[name] == "INT32" else np.object_
            tensor.set_data_from_numpy(np.array(values, dtype=dtype))
            inputs.append(tensor)
    return inputs


async def _one(inputs: list[grpcclient.InferInput]) -> AsyncIterator[dict]:
    yield {"model_name": contract.MODEL_NAME, "inputs": inputs}


async def stream(
    client: aio.InferenceServerClient,
    request: contract.GenerateRequest | contract.DescribeRequest | bytes | None,
    images: Sequence[bytes] = (),
    video_frames: Sequence[bytes] = (),
    frame_counts: Sequence[int] = (),
    stop_after: int | None = None,
    on_delta: Callable[[], object] = lambda: None,
) -> Answer:
    """Run one request; with ``stop_after``, walk away after that many deltas (a cancel)."""
    raw = contract.encode_request(request) if not isinstance(request, bytes | None) else request
    answer = Answer()
    responses = client.stream_infer(_one(build_inputs(raw, images, video_frames, frame_counts)))
    async for result, error in responses:
        if error is not None:
            answer.error = str(error)
            break
        response = result.get_response()
        names = {output.name for output in response.outputs}
        if contract.OUTPUT_TEXT_DELTA in names:
            delta = result.as_numpy(contract.OUTPUT_TEXT_DELTA)[0].decode()
            if delta:
                on_delta()
                answer.deltas.append(delta)
        if contract.OUTPUT_PROMPT_TOKENS in names and contract.OUTPUT_FINISH_REASON not in names:
            answer.prefill_tokens = int(result.as_numpy(contract.OUTPUT_PROMPT_TOKENS)[0])
            answer.deltas_before_prefill = len(answer.deltas)
        if contract.OUTPUT_FINISH_REASON in names:
            answer.finish_reason = result.as_numpy(contract.OUTPUT_FINISH_REASON)[0].decode()
            answer.prompt_tokens = int(result.as_numpy(contract.OUTPUT_PROMPT_TOKENS)[0])
            answer.completion_tokens = int(result.as_numpy(contract.OUTPUT_COMPLETION_TOKENS)[0])
            answer.tool_calls = json.loads(result.as_numpy(contract.OUTPUT_TOOL_CALLS)[0])
        if contract.OUTPUT_CAPABILITIES in names:
            data = result.as_numpy(contract.OUTPUT_CAPABILITIES)[0]
            answer.capabilities = contract.decode_capabilities(data)
        if stop_after is not None and len(answer.deltas) >= stop_after:
            responses.cancel()
            break
        final = response.parameters.get(contract.FINAL_RESPONSE_PARAMETER)
        if final is not None and final.bool_param:
            break
    return answer


def metric(metrics_url: str, name: str) -> float:
    """One counter from Triton's Prometheus endpoint, summed over its labels."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )
