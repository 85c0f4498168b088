"""The ``trtllm`` engine: TensorRT-LLM's LLM API (PyTorch backend) on a Hugging Face checkpoint.

The only module that imports ``tensorrt_llm``, and only inside :meth:`TrtllmEngine.load`
and :func:`import_error`. The chat is rendered, counted and checked exactly as on the
transformers engine (``inference/engines/chat_render.py``, with the checkpoint's own HF
processor and chat template); everything mapped to TensorRT-LLM's objects comes from
``inference/engines/trtllm_mapping.py``. Never run: no machine this project has used had
``tensorrt_llm`` (docs/inference.md, "Engines").
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from llguidance import LLMatcher
from transformers import AutoConfig, AutoProcessor

from inference.contract import Final, GenerateRequest
from inference.detokenize import TextStream
from inference.engines import trtllm_mapping as mapping
from inference.engines.base import Hooks, Media, RequestError
from inference.engines.chat_render import encode, render
from inference.guidance import Guidance
from inference.prompt_cost import measure as measure_prompt_cost
from inference.tool_parsers import ToolCallFormat, tool_call_format

log = logging.getLogger(__name__)


def import_error() -> str | None:
    """Why ``tensorrt_llm`` does not import here, or None when it does."""
    try:
        import tensorrt_llm  # noqa: F401
    except Exception as exc:  # ImportError, or a CUDA library failing to load
        return f"{type(exc).__name__}: {exc}"
    return None


class TrtllmEngine:
    """A checkpoint served by ``tensorrt_llm.LLM``, streamed token by token."""

    def __init__(
        self,
        llm: Any,
        processor: Any,
        model_id: str,
        model_type: str,
        multimodal_model_types: frozenset[str],
        context_length: int,
        calls: ToolCallFormat,
        max_tool_calls: int,
    ) -> None:
        from tensorrt_llm import SamplingParams
        from tensorrt_llm.sampling_params import GuidedDecodingParams

        self._sampling_params = SamplingParams
        self._guided_params = GuidedDecodingParams
        self.llm = llm
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.calls = calls
        self.max_tool_calls = max_tool_calls
        template = getattr(processor, "chat_template", None) or self.tokenizer.chat_template or ""
        self.capabilities = mapping.capabilities(
            model=model_id,
            model_type=model_type,
            multimodal_model_types=multimodal_model_types,
            chat_template=template,
            context_length=context_length,
            prompt_cost=measure_prompt_cost(processor),
        )
        eos = self.tokenizer.eos_token_id
        # Only to check a guide compiles, so a bad schema is the same 400 as on transformers.
        self.guidance = Guidance(
            self.tokenizer, len(self.tokenizer), [] if eos is None else [eos], calls, max_tool_calls
        )
        self.control_tokens = list(self.tokenizer.all_special_tokens) + [
            str(t) for t in self.tokenizer.added_tokens_decoder.values() if t.special
        ]

    @classmethod
    def load(
        cls,
        model_path: str,
        device: str = "auto",
        tool_parser: str = "hermes",
        max_tool_calls: int = 4,
    ) -> TrtllmEngine:
        """Load ``model_path`` (a Hugging Face checkpoint directory) on the GPU ``device``."""
        if not model_path:
            raise ValueError("the trtllm engine needs a checkpoint: set VISIONGATE_MODEL_PATH")
        if device == "cpu":
            raise ValueError("the trtllm engine runs on a GPU only; use engine transformers")
        import torch
        from tensorrt_llm import LLM  # tensorrt_llm 1.x: LLM is the PyTorch backend's
        from tensorrt_llm.inputs import ALL_SUPPORTED_MULTIMODAL_MODELS

        if device.startswith("cuda:"):
            torch.cuda.set_device(int(device.split(":", 1)[1]))
        path = Path(model_path)
        marker = path / "VISIONGATE_MODEL_ID"
        model_id = marker.read_text().strip() if marker.exists() else path.name
        config = AutoConfig.from_pretrained(path)
        text_config = getattr(config, "text_config", config)
        context = int(getattr(text_config, "max_position_embeddings", 0) or 0)
        # llguidance is TensorRT-LLM's PyTorch-only guided backend (llmapi/llm_args.py).
        llm = LLM(model=str(path), guided_decoding_backend="llguidance")
        log.info("loaded %s from %s with TensorRT-LLM", model_id, path)
        return cls(
            llm,
            AutoProcessor.from_pretrained(path),
            model_id,
            str(config.model_type),
            frozenset(ALL_SUPPORTED_MULTIMODAL_MODELS),
            context,
            tool_call_format(tool_parser),
            max_tool_calls,
        )

    def generate(self, request: GenerateRequest, media: Media, hooks: Hooks) -> Final:
        """Generate an answer, streaming deltas through ``hooks.emit``."""
        if not request.messages:
            raise RequestError("messages: at least one message is required")
        if request.logprobs is not None:  # not mapped to SamplingParams(logprobs=k) yet
            raise RequestError(
                "`logprobs` is not supported by the trtllm engine.",
                param="logprobs",
                code="unsupported_parameter",
            )
        native_video = self.capabilities.video == "native"
        rendered = render(request, media, native_video=native_video)
        with_media = bool(rendered.images or rendered.videos)
        if with_media and not self.capabilities.vision:
            raise RequestError(f"{self.capabilities.model} does not accept images")
        if with_media and (problem := mapping.control_token_in(request, self.control_tokens)):
            raise RequestError(problem)
        tools = request.tools if request.tool_choice != "none" else None
        try:
            inputs = encode(self.processor, rendered, tools)
            text = (
                self.processor.apply_chat_template(
                    rendered.messages, tools=tools, add_generation_prompt=True, tokenize=False
                )
                if with_media
                else ""
            )
        except Exception as exc:  # a template or placeholder error is the request's fault
            raise RequestError(f"messages: the chat template rejected them ({exc})") from exc
        prompt_ids = [int(t) for t in inputs["input_ids"][0].tolist()]
        prompt_tokens = len(prompt_ids)
        context = self.capabilities.context_length or prompt_tokens + request.max_tokens
        if prompt_tokens >= context:
            raise RequestError(
                f"the prompt is {prompt_tokens} tokens; the context holds {context} tokens"
            )
        max_new = max(1, min(request.max_tokens, context - prompt_tokens))

        guided = None
        if request.guide is not None:
            lark = mapping.guided_lark(
                request.guide,
                tools,
                request.parallel_tool_calls,
                self.guidance.open_terminal,
                self.guidance.close_terminal,
                self.max_tool_calls,
            )
            # Raises on a bad schema, naming it.
            self.guidance.matcher(LLMatcher.grammar_from_lark(lark), request.guide, tools)
            guided = self._guided_params(**mapping.guided_kwargs(lark))
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        params = self._sampling_params(
            **mapping.sampling_kwargs(request, max_new, seed), guided_decoding=guided
        )
        stream = TextStream(
            lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True),
            request.stop,
            hooks.emit,
            divert=self.calls.open if tools else None,
        )
        prompt = mapping.prompt_input(prompt_ids, text, rendered.images, rendered.videos)
        hooks.prefilled(prompt_tokens)
        try:
            result = self.llm.generate_async(prompt, sampling_params=params, streaming=True)
        except ValueError as exc:  # TensorRT-LLM's own checks of the prompt's size
            raise RequestError(str(exc)) from exc
        tokens: list[int] = []
        for step in result:  # one step per streamed response; no event loop in this thread
            for token in step.outputs[0].token_ids_diff:
                tokens.append(token)
                hooks.on_token()
                stream.add(token)
            if stream.stopped or hooks.cancelled():
                result.abort()
                break
        stream.finish()
        counted = len(getattr(result, "prompt_token_ids", None) or prompt_ids)
        if counted != prompt_tokens:
            log.warning("TensorRT-LLM counted %d prompt tokens, we %d", counted, prompt_tokens)
        ran_out = result.outputs[0].finish_reason == "length" and not stream.stopped
        calls: list[dict[str, Any]] = []
        if stream.diverted:
            rest, calls = self.calls.parse(stream.unsent, cut_off=ran_out)
            if rest and not hooks.cancelled():
                hooks.emit(rest)
        return Final(
            finish_reason=mapping.finish_reason(
                result.outputs[0].finish_reason, stream.stopped, bool(calls)
            ),
            prompt_tokens=prompt_tokens,
            completion_tokens=len(tokens),
            tool_calls=calls,
        )
