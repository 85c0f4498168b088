"""Inference engines, chosen by name from the Triton model's config parameters."""

from __future__ import annotations

from inference.engines.base import Engine, Hooks, Media, RequestError

__all__ = ["Engine", "Hooks", "Media", "RequestError", "load_engine", "resolve"]


def _trtllm_imports() -> bool:
    from inference.engines.trtllm import import_error

    return import_error() is None


def _gpu_visible() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve(name: str) -> str:
    """The engine ``name`` loads: ``auto`` is trtllm when it imports and a GPU is visible."""
    from inference.engines.trtllm_mapping import resolve_engine

    return resolve_engine(name, _trtllm_imports, _gpu_visible)


def load_engine(
    name: str, model_path: str, device: str, tool_parser: str = "hermes", max_tool_calls: int = 4
) -> Engine:
    """Load the engine ``name`` with the checkpoint at ``model_path`` (empty: the default model)."""
    chosen = resolve(name)
    if chosen == "trtllm":
        from inference.engines.trtllm import TrtllmEngine

        return TrtllmEngine.load(
            model_path, device=device, tool_parser=tool_parser, max_tool_calls=max_tool_calls
        )
    from inference.engines.transformers_engine import TransformersEngine

    return TransformersEngine.load(
        model_path, device=device, tool_parser=tool_parser, max_tool_calls=max_tool_calls
    )
