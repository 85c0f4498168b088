"""Inference engines, chosen by name from the Triton model's config parameters."""

from __future__ import annotations

from inference.engines.base import Engine, Hooks, Media, RequestError

__all__ = ["ENGINES", "Engine", "Hooks", "Media", "RequestError", "load_engine"]

ENGINES = ("transformers",)


def load_engine(
    name: str, model_path: str, device: str, tool_parser: str = "hermes", max_tool_calls: int = 4
) -> Engine:
    """Load the engine ``name`` with the checkpoint at ``model_path`` (empty: the default model)."""
    if name == "transformers":
        from inference.engines.transformers_engine import TransformersEngine

        return TransformersEngine.load(
            model_path, device=device, tool_parser=tool_parser, max_tool_calls=max_tool_calls
        )
    raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
