"""Tools and structured output: OpenAI's ``tools``, ``tool_choice`` and ``response_format``.

Checked here against OpenAI's rules and the model's capabilities (a 400 naming the
parameter), then turned into the contract's ``tool_choice`` and :class:`~inference.contract.Guide`,
which the model enforces with guided decoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from gateway.api.chat_request import ChatCompletionRequest
from gateway.api.json_shape import shape
from gateway.errors import InvalidRequest
from gateway.registry import ModelEntry
from gateway.settings import Settings
from inference import contract

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHOICES = ("none", "auto", "required")

ToolChoice = Literal["none", "auto", "required"]


@dataclass
class Guidance:
    """What the contract's request carries for tools and structured output."""

    tools: list[dict[str, Any]] | None
    tool_choice: ToolChoice | None
    guide: contract.Guide | None


class _Schemas:
    """A request's JSON Schemas, checked one by one, each one's depth and their size bounded.

    The bounds are checked before jsonschema, which recurses once per level and costs time
    per value.
    """

    def __init__(self, settings: Settings) -> None:
        self.max_depth = settings.max_json_schema_depth
        self.max_nodes = settings.max_json_schema_nodes
        self.nodes = 0

    def check(self, schema: Any, param: str, code: str) -> None:
        """Raise InvalidRequest naming ``param`` unless ``schema`` is a valid, bounded schema."""
        if not isinstance(schema, dict):
            raise InvalidRequest("The schema must be a JSON object.", param=param, code=code)
        if not isinstance(schema.get("$schema", ""), str):
            # validator_for() crashes on a non-string "$schema" instead of raising SchemaError.
            raise InvalidRequest("`$schema` must be a string.", param=param, code=code)
        measured = shape(schema)
        if measured.depth > self.max_depth:
            raise InvalidRequest(
                f"The JSON Schema nests {measured.depth} levels deep; a schema may nest at most "
                f"{self.max_depth}.",
                param=param,
                code=code,
            )
        self.nodes += measured.nodes
        if self.nodes > self.max_nodes:
            raise InvalidRequest(
                f"The JSON Schemas of this request hold {self.nodes} values so far; together "
                f"they may hold at most {self.max_nodes}.",
                param=param,
                code=code,
            )
        try:
            validator_for(schema).check_schema(schema)
        except SchemaError as exc:
            raise InvalidRequest(
                f"Invalid JSON Schema: {exc.message}.", param=param, code=code
            ) from None


def _tool_names(tools: list[dict[str, Any]], schemas: _Schemas) -> list[str]:
    names: list[str] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(
                'Each tool must be {"type": "function", ...}.', param=f"{where}.type"
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidRequest("A tool needs a `function` object.", param=f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise InvalidRequest(
                "A function name is 1 to 64 letters, digits, underscores or dashes.",
                param=f"{where}.function.name",
            )
        if name in names:
            raise InvalidRequest(f"Two tools are named `{name}`.", param=f"{where}.function.name")
        names.append(name)
        if "parameters" in function:
            schemas.check(
                function["parameters"],
                f"{where}.function.parameters",
                "invalid_function_parameters",
            )
    return names


def _tool_choice(
    choice: str | dict[str, Any] | None, names: list[str]
) -> tuple[ToolChoice | None, contract.Guide | None]:
    """OpenAI's tool_choice as the contract's; ``required`` and a named function force a call.

    As at OpenAI, only ``none`` may be given without ``tools``.
    """
    if choice is None or choice == "none" or (choice == "auto" and names):
        return choice, None  # type: ignore[return-value]
    if not names:
        raise InvalidRequest(
            "Invalid value for `tool_choice`: `tool_choice` is only allowed when `tools` are "
            "specified.",
            param="tool_choice",
        )
    if choice == "required":
        return "required", contract.Guide(type="tool_call")
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if (
        not isinstance(choice, dict)
        or choice.get("type") != "function"
        or not isinstance(name, str)
    ):
        raise InvalidRequest(
            f"`tool_choice` must be one of {', '.join(_CHOICES)}, or "
            '{"type": "function", "function": {"name": ...}}.',
            param="tool_choice",
        )
    if name not in names:
        raise InvalidRequest(
            f"`tool_choice` names the function `{name}`, which is not among `tools`.",
            param="tool_choice",
            code="invalid_tool_choice",
        )
    return "required", contract.Guide(type="tool_call", tool_names=[name])


def _format_guide(chat: ChatCompletionRequest, schemas: _Schemas) -> contract.Guide | None:
    fmt = chat.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return contract.Guide(type="json")
    if fmt.json_schema is None or fmt.json_schema.schema is None:
        raise InvalidRequest(
            "`response_format` of type json_schema needs `json_schema.schema`.",
            param="response_format.json_schema.schema",
        )
    schema = fmt.json_schema.schema
    schemas.check(schema, "response_format.json_schema.schema", "invalid_json_schema")
    return contract.Guide(type="json_schema", json_schema=schema)


def guidance(chat: ChatCompletionRequest, model: ModelEntry, settings: Settings) -> Guidance:
    """Check tools, tool_choice and response_format; what the model is asked to enforce."""
    tools = chat.tools or None
    schemas = _Schemas(settings)
    names = _tool_names(tools or [], schemas)
    choice, tool_guide = _tool_choice(chat.tool_choice, names)
    if tools and choice != "none" and not model.tools:
        raise InvalidRequest(
            f"The model `{model.id}` does not support tool use.",
            param="tools",
            code="tools_not_supported",
        )
    format_guide = _format_guide(chat, schemas)
    if format_guide is not None and not model.json_mode:
        raise InvalidRequest(
            f"The model `{model.id}` does not support JSON mode.",
            param="response_format",
            code="json_mode_not_supported",
        )
    # A forced call decides the output's shape; otherwise the response format does.
    return Guidance(tools=tools, tool_choice=choice, guide=tool_guide or format_guide)
