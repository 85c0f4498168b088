"""The models this gateway serves: public ids (and aliases) mapped to Triton models.

Each entry starts from settings. What settings leave unset is filled from the model's own
answer to a :class:`~inference.contract.DescribeRequest`: the registry is built with the
backend's ``describe`` and asks it in :meth:`Registry.ensure_described`, at startup and
again, from whoever needs the answers, while a model has not answered (Triton may come up
after the gateway); conservative defaults apply until then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.errors import ApiError, ModelNotFound
from gateway.settings import ModelSettings, Settings
from inference.contract import Capabilities, PromptCost

log = logging.getLogger("visiongate.registry")

Describe = Callable[[str], Awaitable[Capabilities]]


@dataclass
class ModelEntry:
    """One served model and what it can do."""

    id: str
    triton_model: str
    owned_by: str
    description: str
    created: int
    vision: bool
    video: bool
    tools: bool
    json_mode: bool
    max_images: int
    context_length: int | None
    # How the model's tokenizer counts a prompt; None until it says (settings estimate).
    prompt_cost: PromptCost | None = None
    described: bool = False


def _entry(config: ModelSettings, settings: Settings, created: int) -> ModelEntry:
    return ModelEntry(
        id=config.id,
        triton_model=config.triton_model,
        owned_by=config.owned_by,
        description=config.description,
        created=created,
        vision=True if config.vision is None else config.vision,
        video=bool(config.video),
        tools=bool(config.tools),
        json_mode=bool(config.json_mode),
        max_images=settings.default_max_images if config.max_images is None else config.max_images,
        context_length=config.context_length,
    )


def _apply(entry: ModelEntry, config: ModelSettings, found: Capabilities) -> None:
    """Fill what settings left unset from what the model says about itself."""
    if config.vision is None:
        entry.vision = found.vision
    if config.video is None:
        entry.video = found.video != "none"
    if config.tools is None:
        entry.tools = found.tools
    if config.json_mode is None:
        entry.json_mode = found.guided_decoding
    if config.context_length is None:
        entry.context_length = found.context_length or None
    entry.prompt_cost = found.prompt_cost
    entry.described = True


class Registry:
    """Public model ids and aliases → entries."""

    def __init__(self, settings: Settings, describe: Describe) -> None:
        self._describe = describe
        created = int(time.time())
        self._configs = {config.id: config for config in settings.models}
        self.entries = [_entry(config, settings, created) for config in settings.models]
        self._by_name: dict[str, ModelEntry] = {}
        for entry, config in zip(self.entries, settings.models, strict=True):
            for name in (config.id, *config.aliases):
                self._by_name[name] = entry

    def resolve(self, model: str) -> ModelEntry:
        """The entry for a public id or alias; ModelNotFound otherwise."""
        entry = self._by_name.get(model)
        if entry is None:
            raise ModelNotFound(model)
        return entry

    async def ensure_described(self) -> None:
        """Ask each model that has not yet answered what it can do; failures wait for next time."""
        for entry in self.entries:
            if entry.described:
                continue
            try:
                found = await self._describe(entry.triton_model)
            except ApiError as exc:
                log.info("capabilities of %s not known yet: %s", entry.id, exc)
                continue
            _apply(entry, self._configs[entry.id], found)
            log.info("model %s -> triton %s: %s", entry.id, entry.triton_model, found)
