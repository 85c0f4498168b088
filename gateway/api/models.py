"""``GET /v1/models`` and ``GET /v1/models/{id}`` (and the same under ``/openai``)."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, Response, get

from gateway.api.admission import authenticate
from gateway.api.services import Services
from gateway.registry import ModelEntry


class ModelCapabilities(msgspec.Struct):
    """What a model accepts (visiongate's extension of the model object)."""

    vision: bool
    video: bool
    tools: bool
    json_mode: bool
    max_images: int


class Model(msgspec.Struct):
    """An OpenAI model object, with Groq's ``active`` and ``context_window``."""

    id: str
    created: int
    owned_by: str
    active: bool
    context_window: int | None
    description: str
    capabilities: ModelCapabilities
    object: str = "model"


class ModelList(msgspec.Struct):
    """An OpenAI list of models."""

    data: list[Model]
    object: str = "list"


def _model(entry: ModelEntry) -> Model:
    return Model(
        id=entry.id,
        created=entry.created,
        owned_by=entry.owned_by,
        active=True,
        context_window=entry.context_length,
        description=entry.description,
        capabilities=ModelCapabilities(
            vision=entry.vision,
            video=entry.video,
            tools=entry.tools,
            json_mode=entry.json_mode,
            max_images=entry.max_images,
        ),
    )


_encode = msgspec.json.Encoder().encode


class ModelsController(Controller):
    """The model registry as OpenAI's models endpoints; like OpenAI's, they need an API key."""

    @get(["/v1/models", "/openai/v1/models"])
    async def list_models(self, request: Request) -> Response[bytes]:
        """Every served model."""
        services: Services = request.app.state.services
        await authenticate(services, request)
        await services.registry.ensure_described()
        body = ModelList([_model(entry) for entry in services.registry.entries])
        return Response(_encode(body), media_type="application/json")

    @get(["/v1/models/{model_id:path}", "/openai/v1/models/{model_id:path}"])
    async def retrieve_model(self, request: Request, model_id: str) -> Response[bytes]:
        """One model by id (ids contain a slash, hence the path parameter)."""
        services: Services = request.app.state.services
        await authenticate(services, request)
        await services.registry.ensure_described()
        entry = services.registry.resolve(model_id.lstrip("/"))
        return Response(_encode(_model(entry)), media_type="application/json")
