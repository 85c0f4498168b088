"""The ``transformers`` engine: any Hugging Face image-text-to-text checkpoint, CPU or CUDA."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from inference import tiny_vlm
from inference.contract import Capabilities, Final, FinishReason, GenerateRequest
from inference.detokenize import TextStream
from inference.engines.base import Hooks, Media, RequestError
from inference.engines.chat_render import encode, render
from inference.guidance import Guidance, GuidedLogits
from inference.logprobs import LogprobRecorder
from inference.prompt_cost import measure as measure_prompt_cost
from inference.sampling import build_processors
from inference.tool_parsers import ToolCallFormat, tool_call_format

log = logging.getLogger(__name__)


class _Streamer(BaseStreamer):
    """Feeds each generated token to a TextStream; ``generate`` calls it once per step.

    With a ``recorder``, each token but a special one (no text: it is skipped in decoding) is
    recorded first.
    """

    def __init__(
        self,
        stream: TextStream,
        on_token: Any,
        recorder: LogprobRecorder | None = None,
        special_ids: set[int] | None = None,
    ) -> None:
        self.stream = stream
        self.on_token = on_token
        self.recorder = recorder
        self.special_ids = special_ids or set()
        self.tokens: list[int] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.tokens.append(token)
            self.on_token()
            if self.recorder is not None and token not in self.special_ids:
                self.recorder.take(token)
            self.stream.add(token)

    def end(self) -> None:
        self.stream.finish()


class _StopWhen(StoppingCriteria):
    """Stop on a stop string or when the client cancelled; polled after every token."""

    def __init__(self, stream: TextStream, cancelled: Any) -> None:
        self.stream = stream
        self.cancelled = cancelled

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> Any:
        stop = self.stream.stopped or self.cancelled()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


def _pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class TransformersEngine:
    """Loads a checkpoint with AutoProcessor and AutoModelForImageTextToText and streams answers."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        model_id: str,
        device: str,
        calls: ToolCallFormat,
        max_tool_calls: int,
    ) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.calls = calls
        self.tokenizer = processor.tokenizer
        self.eos_ids = set(self._eos_ids())
        text_config = getattr(model.config, "text_config", model.config)
        self.vocab_size = int(text_config.vocab_size)
        self.guidance = Guidance(
            self.tokenizer, self.vocab_size, sorted(self.eos_ids), calls, max_tool_calls
        )
        template = processor.chat_template or self.tokenizer.chat_template or ""
        has_video_processor = getattr(processor, "video_processor", None) is not None
        native_video = has_video_processor and importlib.util.find_spec("torchvision") is not None
        self.capabilities = Capabilities(
            model=model_id,
            engine="transformers",
            vision=getattr(processor, "image_processor", None) is not None,
            video="native" if native_video else "frames_as_images",
            tools="tools" in template,
            guided_decoding=True,
            context_length=int(getattr(text_config, "max_position_embeddings", 0) or 0),
            prompt_cost=measure_prompt_cost(processor),
        )

    @classmethod
    def load(
        cls,
        model_path: str,
        device: str = "auto",
        tool_parser: str = "hermes",
        max_tool_calls: int = 4,
    ) -> TransformersEngine:
        """Load ``model_path``, or the shipped default model (tiny-vlm) when it is empty."""
        path = Path(model_path) if model_path else tiny_vlm.default_path()
        marker = path / "VISIONGATE_MODEL_ID"
        model_id = marker.read_text().strip() if marker.exists() else path.name
        device = _pick_device(device)
        threads = os.environ.get("VISIONGATE_TORCH_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        processor = AutoProcessor.from_pretrained(path)
        model: Any = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
        model = model.to(device).eval()
        log.info("loaded %s from %s on %s", model_id, path, device)
        calls = tool_call_format(tool_parser)
        return cls(model, processor, model_id, device, calls, max_tool_calls)

    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return [eos] if isinstance(eos, int) else list(eos or [])

    def generate(self, request: GenerateRequest, media: Media, hooks: Hooks) -> Final:
        """Generate an answer, streaming deltas through ``hooks.emit``."""
        if not request.messages:
            raise RequestError("messages: at least one message is required")
        rendered = render(request, media)
        if rendered.images and not self.capabilities.vision:
            raise RequestError(f"{self.capabilities.model} does not accept images")
        tools = request.tools if request.tool_choice != "none" else None
        try:
            inputs = encode(self.processor, rendered, tools).to(self.device)
        except Exception as exc:  # a template or placeholder error is the request's fault
            raise RequestError(f"messages: the chat template rejected them ({exc})") from exc
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        context = self.capabilities.context_length or prompt_tokens + request.max_tokens
        if prompt_tokens >= context:
            raise RequestError(
                f"the prompt is {prompt_tokens} tokens; the context holds {context} tokens"
            )
        max_new = max(1, min(request.max_tokens, context - prompt_tokens))

        guided = []
        if request.guide is not None:
            grammar = self.guidance.grammar(request.guide, tools, request.parallel_tool_calls)
            matcher = self.guidance.matcher(grammar, request.guide, tools)
            guided.append(GuidedLogits(matcher, prompt_tokens, self.vocab_size))
        recorder = None
        if request.logprobs is not None:
            token_bytes = self.guidance.tokenizer.decode_bytes
            recorder = LogprobRecorder(request.logprobs, lambda token: token_bytes([token]))

        def emit(text: str) -> None:
            if recorder is not None:
                hooks.logprobs(recorder.pending())
            hooks.emit(text)

        stream = TextStream(
            lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True),
            request.stop,
            emit,
            divert=self.calls.open if tools else None,
        )
        special = self.eos_ids | set(self.tokenizer.all_special_ids)
        streamer = _Streamer(stream, hooks.on_token, recorder, special)
        processors = build_processors(
            prompt_length=prompt_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
            extra=guided,
            record=recorder,
        )
        config = GenerationConfig(
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=sorted(self.eos_ids) or None,
            pad_token_id=self.model.generation_config.pad_token_id,
        )
        hooks.prefilled(prompt_tokens)
        with torch.inference_mode():
            self.model.generate(
                **inputs,
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([_StopWhen(stream, hooks.cancelled)]),
                streamer=streamer,
            )
        completion_tokens = len(streamer.tokens)
        ended_on_eos = bool(streamer.tokens) and streamer.tokens[-1] in self.eos_ids
        # Out of tokens is "length"; an end token, a stop string or a cancel is "stop".
        ran_out = completion_tokens >= max_new and not (stream.stopped or ended_on_eos)
        calls: list[dict[str, Any]] = []
        if stream.diverted:
            rest, calls = self.calls.parse(stream.unsent, cut_off=ran_out)
            if rest and not hooks.cancelled():
                emit(rest)
        finish: FinishReason = "length" if ran_out else "tool_calls" if calls else "stop"
        return Final(
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            tool_calls=calls,
        )
