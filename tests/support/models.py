"""Model entries as the settings describe them, for tests that call a stage directly."""

from __future__ import annotations

from gateway.registry import ModelEntry, Registry
from gateway.settings import Settings
from inference import contract


async def _not_asked(triton_model: str) -> contract.Capabilities:
    raise AssertionError(f"{triton_model} was not meant to be described")


def model_entry(settings: Settings) -> ModelEntry:
    """The first served model, from settings alone (before any model describes itself)."""
    return Registry(settings, _not_asked).entries[0]
